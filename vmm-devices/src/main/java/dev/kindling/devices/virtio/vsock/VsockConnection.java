package dev.kindling.devices.virtio.vsock;

import dev.kindling.sys.Fd;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.ClosedByInterruptException;
import java.nio.channels.ClosedChannelException;
import java.util.Objects;

/**
 * One stream connection between the host program and the guest, with blocking streams and a
 * blocking {@link ByteChannel}. The guest's credit paces writes: a guest that does not read stops
 * the writer rather than buffering without bound. {@link #close()} ends it both ways (the guest
 * sees a shutdown, then the connection closes); the guest's close is end of stream here.
 *
 * <p>A thread interrupted while blocked in a stream gets an {@link InterruptedIOException} (the
 * connection stays open, the interrupt status stays set); in the channel, the connection is closed
 * and it gets a {@link ClosedByInterruptException}, as NIO channels do.
 */
public final class VsockConnection implements ByteChannel {
    private final BlockingSocket socket;
    private final int localPort;
    private final int peerPort;
    private final InputStream in = new In();
    private final OutputStream out = new Out();

    /** Wraps {@code stream}, the host program's end of a socket pair whose other end the device relays. */
    VsockConnection(Fd stream, int localPort, int peerPort) {
        this.socket = new BlockingSocket(Objects.requireNonNull(stream, "stream"));
        this.localPort = localPort;
        this.peerPort = peerPort;
    }

    /** The host's port of this connection. */
    public int localPort() {
        return localPort;
    }

    /** The guest's port of this connection. */
    public int peerPort() {
        return peerPort;
    }

    /** Reads from the guest: -1 at end of stream. One stream per connection; closing it closes the connection. */
    public InputStream inputStream() {
        return in;
    }

    /** Writes to the guest. Closing it closes the connection. */
    public OutputStream outputStream() {
        return out;
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        if (!dst.hasRemaining()) {
            if (!socket.isOpen()) {
                throw new ClosedChannelException();
            }
            return 0;
        }
        try {
            return socket.read(dst.remaining(), (b, n) -> dst.put(b.asSlice(0, n).asByteBuffer()));
        } catch (InterruptedIOException e) {
            throw closedByInterrupt();
        }
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        int length = src.remaining();
        int start = src.position();
        try {
            socket.write(length, (b, offset, n) -> b.asSlice(0, n).asByteBuffer()
                    .put(src.slice(start + (int) offset, n)), n -> src.position(src.position() + (int) n));
        } catch (InterruptedIOException e) {
            throw closedByInterrupt();
        }
        return length;
    }

    private ClosedByInterruptException closedByInterrupt() {
        close();
        return new ClosedByInterruptException();
    }

    /** Ends this side's output (the guest reads end of stream) and keeps reading. */
    public void shutdownOutput() throws IOException {
        socket.shutdownOutput();
    }

    @Override
    public boolean isOpen() {
        return socket.isOpen();
    }

    /** Closes the connection; a read or write blocked in another thread ends with an exception. Idempotent. */
    @Override
    public void close() {
        socket.close();
    }

    @Override
    public String toString() {
        return "VsockConnection[host port " + Integer.toUnsignedString(localPort) + ", guest port "
                + Integer.toUnsignedString(peerPort) + (isOpen() ? "]" : ", closed]");
    }

    private final class In extends InputStream {
        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            int n = read(one, 0, 1);
            return n < 0 ? -1 : one[0] & 0xFF;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            Objects.checkFromIndexSize(off, len, b.length);
            if (len == 0) {
                return 0;
            }
            return socket.read(len, (buf, n) -> MemorySegment.copy(buf, ValueLayout.JAVA_BYTE, 0, b, off, n));
        }

        @Override
        public void close() {
            VsockConnection.this.close();
        }
    }

    private final class Out extends OutputStream {
        @Override
        public void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            Objects.checkFromIndexSize(off, len, b.length);
            if (len > 0) {
                socket.write(len, (buf, offset, n) -> MemorySegment.copy(b, off + (int) offset, buf, ValueLayout.JAVA_BYTE, 0, n),
                        n -> {});
            }
        }

        @Override
        public void close() {
            VsockConnection.this.close();
        }
    }
}
