package dev.kindling.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Unix-domain stream sockets on a path (a server's {@link #listen}, {@link #accept} and a client's
 * {@link #connect}), and messages with file descriptors attached (SCM_RIGHTS) over any Unix-domain
 * socket. The descriptors returned are owned by the caller; a listening socket's path stays in the
 * file system until the caller deletes it.
 */
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
    /** {@code struct cmsghdr} header, data follows. */
    public static final StructLayout CMSGHDR = MemoryLayout.structLayout(
            JAVA_LONG.withName("cmsg_len"), JAVA_INT.withName("cmsg_level"), JAVA_INT.withName("cmsg_type"));
    /** {@code struct sockaddr_un}. */
    public static final StructLayout SOCKADDR_UN = MemoryLayout.structLayout(
            JAVA_SHORT.withName("sun_family"), MemoryLayout.sequenceLayout(108, JAVA_BYTE).withName("sun_path"));
    private static final long SUN_PATH = SOCKADDR_UN.byteOffset(MemoryLayout.PathElement.groupElement("sun_path"));
    private static final long SUN_PATH_SIZE = SOCKADDR_UN.byteSize() - SUN_PATH;
    /** Most descriptors one message may carry (the kernel's SCM_MAX_FD is 253). */
    public static final int MAX_FDS = 253;
    private static final long MSG_CTRUNC = 0x8;

    private UnixSocket() {}

    /** A stream socket bound to {@code path} and listening, with room for {@code backlog} pending connections. */
    public static Fd listen(Path path, int backlog) {
        Fd socket = Fd.adopt(Libc.socket(Libc.AF_UNIX, Libc.SOCK_STREAM, 0), "unix socket listening on " + path);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment addr = address(arena, path);
            Libc.bind(socket, addr, (int) addr.byteSize(), path.toString());
            Libc.listen(socket, backlog);
            return socket;
        } catch (RuntimeException | Error e) {
            socket.close();
            throw e;
        }
    }

    /** Waits for and takes the next connection on {@code listening} (a socket from {@link #listen}). */
    public static Fd accept(Fd listening) {
        return Fd.adopt(Libc.accept4(listening, 0), "connection accepted on " + listening.what());
    }

    /** A stream socket connected to the server listening on {@code path}. */
    public static Fd connect(Path path) {
        Fd socket = Fd.adopt(Libc.socket(Libc.AF_UNIX, Libc.SOCK_STREAM, 0), "unix socket connected to " + path);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment addr = address(arena, path);
            Libc.connect(socket, addr, (int) addr.byteSize(), path.toString());
            return socket;
        } catch (RuntimeException | Error e) {
            socket.close();
            throw e;
        }
    }

    /**
     * As {@link #connect(Path)}, on a non-blocking socket: where a blocking connect would wait for
     * room in the server's backlog, this fails at once with EAGAIN.
     */
    public static Fd connectNonBlocking(Path path) {
        Fd socket = Fd.adopt(Libc.socket(Libc.AF_UNIX, Libc.SOCK_STREAM | Libc.O_NONBLOCK, 0), "unix socket connected to " + path);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment addr = address(arena, path);
            Libc.connect(socket, addr, (int) addr.byteSize(), path.toString());
            return socket;
        } catch (RuntimeException | Error e) {
            socket.close();
            throw e;
        }
    }

    /** {@code path} as a {@code sockaddr_un}: the family, then the path and its NUL, all within sun_path. */
    private static MemorySegment address(Arena arena, Path path) {
        byte[] name = path.toString().getBytes(StandardCharsets.UTF_8);
        if (name.length == 0 || name.length >= SUN_PATH_SIZE) {
            throw new IllegalArgumentException("unix socket path " + path + " is " + name.length
                    + " bytes; sun_path holds 1 to " + (SUN_PATH_SIZE - 1));
        }
        MemorySegment addr = arena.allocate(SOCKADDR_UN);
        addr.set(JAVA_SHORT, 0, (short) Libc.AF_UNIX);
        MemorySegment.copy(name, 0, addr, JAVA_BYTE, SUN_PATH, name.length);
        return addr;
    }

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
            MemorySegment iov = arena.allocate(IoVec.LAYOUT);
            IoVec.set(iov, 0, buf);
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
            MemorySegment iov = arena.allocate(IoVec.LAYOUT);
            IoVec.set(iov, 0, buf);
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
