package dev.kindling.devices.virtio.vsock;

import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/** The test's end of a socketpair whose other end the device relays; blocking unless made otherwise. */
final class HostEnd implements AutoCloseable {
    final Fd fd;
    /** The end the device gets. */
    final Fd device;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment buf = arena.allocate(64 * 1024);

    HostEnd() {
        Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
        this.fd = pair[0];
        this.device = pair[1];
    }

    /** Writes all of {@code data} (blocking); false if the peer is gone. */
    synchronized boolean write(byte[] data) {
        int at = 0;
        while (at < data.length) {
            int n = Math.min(data.length - at, (int) buf.byteSize());
            MemorySegment.copy(data, at, buf, ValueLayout.JAVA_BYTE, 0, n);
            long r = Libc.send(fd, buf, n, 0);
            if (r < 0) {
                return false;
            }
            at += (int) r;
        }
        return true;
    }

    /** One send without waiting: bytes sent, or -EAGAIN. */
    synchronized long trySend(byte[] data) {
        int n = Math.min(data.length, (int) buf.byteSize());
        MemorySegment.copy(data, 0, buf, ValueLayout.JAVA_BYTE, 0, n);
        return Libc.send(fd, buf, n, Libc.MSG_DONTWAIT);
    }

    /** What one recv returns: bytes (empty at end of stream), or null for EAGAIN or a reset. */
    byte[] read(boolean wait) {
        return read(wait, (int) buf.byteSize());
    }

    synchronized byte[] read(boolean wait, int max) {
        long r = Libc.recv(fd, buf, Math.min(max, buf.byteSize()), wait ? 0 : Libc.MSG_DONTWAIT);
        if (r < 0) {
            return null;
        }
        byte[] out = new byte[(int) r];
        MemorySegment.copy(buf, ValueLayout.JAVA_BYTE, 0, out, 0, (int) r);
        return out;
    }

    /** Reads exactly {@code n} bytes, or fewer at end of stream. */
    byte[] readFully(int n) {
        byte[] out = new byte[n];
        int at = 0;
        while (at < n) {
            byte[] b = read(true, n - at);
            if (b == null || b.length == 0) {
                return Arrays.copyOf(out, at);
            }
            int take = Math.min(b.length, n - at);
            System.arraycopy(b, 0, out, at, take);
            at += take;
            if (take < b.length) {
                throw new AssertionError("read past " + n);
            }
        }
        return out;
    }

    @Override
    public void close() {
        fd.close();
        if (device.isOpen()) {
            device.close();
        }
        arena.close();
    }
}
