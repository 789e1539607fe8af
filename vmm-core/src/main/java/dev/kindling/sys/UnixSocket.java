package dev.kindling.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.util.ArrayList;
import java.util.List;

/** Messages with file descriptors attached (SCM_RIGHTS) over a Unix-domain socket. */
public final class UnixSocket {
    /** {@code struct msghdr}. */
    public static final StructLayout MSGHDR = MemoryLayout.structLayout(
            ADDRESS.withName("msg_name"),
            JAVA_INT.withName("msg_namelen"),
            MemoryLayout.paddingLayout(4),
            ADDRESS.withName("msg_iov"),
            JAVA_LONG.withName("msg_iovlen"),
            ADDRESS.withName("msg_control"),
            JAVA_LONG.withName("msg_controllen"),
            JAVA_INT.withName("msg_flags"),
            MemoryLayout.paddingLayout(4));
    /** {@code struct iovec}. */
    public static final StructLayout IOVEC = MemoryLayout.structLayout(
            ADDRESS.withName("iov_base"), JAVA_LONG.withName("iov_len"));
    /** {@code struct cmsghdr} header, data follows. */
    public static final StructLayout CMSGHDR = MemoryLayout.structLayout(
            JAVA_LONG.withName("cmsg_len"), JAVA_INT.withName("cmsg_level"), JAVA_INT.withName("cmsg_type"));
    /** Most descriptors one message may carry (the kernel's SCM_MAX_FD is 253). */
    public static final int MAX_FDS = 253;
    private static final long MSG_CTRUNC = 0x8;

    private UnixSocket() {}

    private static long cmsgSpace(int fds) {
        return CMSGHDR.byteSize() + ((fds * 4L + 7) & ~7L);
    }

    /** A message received: its bytes and the descriptors that came with it (owned by the caller). */
    public record Received(byte[] data, List<Fd> fds) {}

    /** Sends {@code data} with {@code fds} attached; returns the bytes sent. */
    public static long send(Fd socket, byte[] data, List<Fd> fds) {
        if (data.length == 0) {
            throw new IllegalArgumentException("a message with descriptors needs at least one data byte");
        }
        if (fds.size() > MAX_FDS) {
            throw new IllegalArgumentException("at most " + MAX_FDS + " descriptors per message, got " + fds.size());
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocateFrom(JAVA_BYTE, data);
            MemorySegment iov = arena.allocate(IOVEC);
            iov.set(ADDRESS, 0, buf);
            iov.set(JAVA_LONG, 8, data.length);
            MemorySegment msg = arena.allocate(MSGHDR);
            msg.set(ADDRESS, 16, iov);
            msg.set(JAVA_LONG, 24, 1);
            if (!fds.isEmpty()) {
                long space = cmsgSpace(fds.size());
                MemorySegment control = arena.allocate(space, 8);
                control.set(JAVA_LONG, 0, CMSGHDR.byteSize() + fds.size() * 4L);
                control.set(JAVA_INT, 8, Libc.SOL_SOCKET);
                control.set(JAVA_INT, 12, Libc.SCM_RIGHTS);
                for (int i = 0; i < fds.size(); i++) {
                    control.set(JAVA_INT, CMSGHDR.byteSize() + i * 4L, fds.get(i).value());
                }
                msg.set(ADDRESS, 32, control);
                msg.set(JAVA_LONG, 40, space);
            }
            return Libc.sendmsg(socket, msg, 0);
        }
    }

    /**
     * Receives one message of at most {@code maxBytes} with up to {@code maxFds} descriptors. Fails
     * (closing whatever arrived) if the peer sent more descriptors than {@code maxFds}.
     */
    public static Received receive(Fd socket, int maxBytes, int maxFds) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(Math.max(1, maxBytes));
            MemorySegment iov = arena.allocate(IOVEC);
            iov.set(ADDRESS, 0, buf);
            iov.set(JAVA_LONG, 8, buf.byteSize());
            MemorySegment msg = arena.allocate(MSGHDR);
            msg.set(ADDRESS, 16, iov);
            msg.set(JAVA_LONG, 24, 1);
            long space = cmsgSpace(Math.max(1, maxFds));
            MemorySegment control = arena.allocate(space, 8);
            msg.set(ADDRESS, 32, control);
            msg.set(JAVA_LONG, 40, space);
            long n = Libc.recvmsg(socket, msg, 0);
            List<Fd> fds = new ArrayList<>();
            long controlLen = msg.get(JAVA_LONG, 40);
            long off = 0;
            while (off + CMSGHDR.byteSize() <= controlLen) {
                long len = control.get(JAVA_LONG, off);
                if (len < CMSGHDR.byteSize() || off + len > controlLen) {
                    break;
                }
                if (control.get(JAVA_INT, off + 8) == Libc.SOL_SOCKET && control.get(JAVA_INT, off + 12) == Libc.SCM_RIGHTS) {
                    for (long p = off + CMSGHDR.byteSize(); p + 4 <= off + len; p += 4) {
                        fds.add(Fd.adopt(control.get(JAVA_INT, p), "received fd"));
                    }
                }
                off += (len + 7) & ~7L;
            }
            if ((msg.get(JAVA_INT, 48) & MSG_CTRUNC) != 0 || fds.size() > maxFds) {
                fds.forEach(Fd::close);
                throw new IllegalStateException("peer sent more than " + maxFds + " descriptors in one message");
            }
            return new Received(buf.asSlice(0, n).toArray(JAVA_BYTE), List.copyOf(fds));
        }
    }
}
