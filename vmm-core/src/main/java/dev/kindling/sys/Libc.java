package dev.kindling.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.TimeUnit;

/**
 * The C library calls Kindling makes, bound with the FFM API. Every call captures errno and turns a
 * failure into a {@link SyscallException} that names the call. Methods return raw ints; owning types
 * ({@link Fd}, {@link Mapping}, {@link EventFd}) sit on top.
 */
@SuppressWarnings("restricted") // this class is where Kindling's native calls are bound
public final class Libc {
    public static final int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0x40, O_EXCL = 0x80,
            O_CLOEXEC = 0x80000, O_NONBLOCK = 0x800;
    public static final int FALLOC_FL_KEEP_SIZE = 0x01, FALLOC_FL_PUNCH_HOLE = 0x02, FALLOC_FL_ZERO_RANGE = 0x10;
    public static final int LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;
    /** The file type bits of {@code st_mode}, and the type of a block device. */
    public static final int S_IFMT = 0170000, S_IFBLK = 0060000;
    public static final int PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
    public static final int MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20,
            MAP_NORESERVE = 0x4000;
    public static final int EFD_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800, EFD_SEMAPHORE = 1;
    public static final int MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2;
    public static final short POLLIN = 1, POLLOUT = 4, POLLERR = 8, POLLHUP = 16, POLLNVAL = 32;
    public static final int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_SEQPACKET = 5, SOCK_CLOEXEC = 0x80000;
    public static final int SOL_SOCKET = 1, SCM_RIGHTS = 1, MSG_CMSG_CLOEXEC = 0x40000000;
    public static final int MSG_PEEK = 0x2, MSG_DONTWAIT = 0x40, MSG_NOSIGNAL = 0x4000;
    public static final int SHUT_RD = 0, SHUT_WR = 1, SHUT_RDWR = 2;
    private static final int F_GETFL = 3, F_SETFL = 4;
    private static final int F_DUPFD_CLOEXEC = 1030, F_ADD_SEALS = 1033, F_GET_SEALS = 1034;
    public static final int F_SEAL_SEAL = 1, F_SEAL_SHRINK = 2, F_SEAL_GROW = 4, F_SEAL_WRITE = 8;
    public static final int SEEK_SET = 0, SEEK_END = 2, SEEK_DATA = 3, SEEK_HOLE = 4;
    /** FICLONE = _IOW(0x94, 9, int): share the source's extents (a reflink). */
    public static final Ioctl FICLONE = Ioctl.iow("FICLONE", 0x94, 9, 4);
    public static final int EPOLL_CLOEXEC = 0x80000, EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;
    public static final int SIG_BLOCK = 0, SIG_UNBLOCK = 1, SIG_SETMASK = 2;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO =
            CALL_STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");
    /** One errno buffer per thread: calls stay allocation-free on hot paths such as KVM_RUN. */
    private static final ThreadLocal<MemorySegment> STATE =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(CALL_STATE));

    // Each group of handles is bound when first used (a nested class is initialised then): binding
    // one spins classes no class-data archive keeps, about 10 ms each at start-up. Their fields are
    // static final, so the JIT still inlines a call as if it were bound here.

    /** The calls of every vCPU exit and device I/O. */
    private static final class Io {
        static final MethodHandle IOCTL_LONG = LINKER.downcallHandle(find("ioctl"),
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG),
                CAPTURE_ERRNO, Linker.Option.firstVariadicArg(2));
        static final MethodHandle IOCTL_PTR = LINKER.downcallHandle(find("ioctl"),
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS),
                CAPTURE_ERRNO, Linker.Option.firstVariadicArg(2));
        static final MethodHandle READ = errnoCall("read", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG);
        static final MethodHandle WRITE = errnoCall("write", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG);
        static final MethodHandle POLL = errnoCall("poll", JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT);
        static final MethodHandle READV = errnoCall("readv", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT);
        static final MethodHandle WRITEV = errnoCall("writev", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT);
    }

    /** The event loop of device I/O threads. */
    private static final class Epolls {
        static final MethodHandle EPOLL_CREATE1 = errnoCall("epoll_create1", JAVA_INT, JAVA_INT);
        static final MethodHandle EPOLL_CTL = errnoCall("epoll_ctl", JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS);
        static final MethodHandle EPOLL_WAIT = errnoCall("epoll_wait", JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT);
    }

    private static final class Descriptors {
        // open(path, flags, ...): the mode is variadic
        static final MethodHandle OPEN = LINKER.downcallHandle(find("open"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), CAPTURE_ERRNO, Linker.Option.firstVariadicArg(2));
        static final MethodHandle CLOSE = errnoCall("close", JAVA_INT, JAVA_INT);
        static final MethodHandle EVENTFD = errnoCall("eventfd", JAVA_INT, JAVA_INT, JAVA_INT);
    }

    /** Memory files, and the sizing and positioned I/O of files. */
    private static final class Files {
        static final MethodHandle MEMFD_CREATE = errnoCall("memfd_create", JAVA_INT, ADDRESS, JAVA_INT);
        static final MethodHandle FTRUNCATE = errnoCall("ftruncate", JAVA_INT, JAVA_INT, JAVA_LONG);
        static final MethodHandle LSEEK = errnoCall("lseek", JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT);
        static final MethodHandle PREAD = errnoCall("pread", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG);
        static final MethodHandle PWRITE = errnoCall("pwrite", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG);
        static final MethodHandle PREADV = errnoCall("preadv", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG);
        static final MethodHandle PWRITEV = errnoCall("pwritev", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG);
        static final MethodHandle COPY_FILE_RANGE = errnoCall("copy_file_range", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS,
                JAVA_LONG, JAVA_INT);
    }

    /** What a disk image needs besides reads and writes: durability, space, a lock, its type. */
    private static final class Disks {
        static final MethodHandle FSYNC = errnoCall("fsync", JAVA_INT, JAVA_INT);
        static final MethodHandle FDATASYNC = errnoCall("fdatasync", JAVA_INT, JAVA_INT);
        static final MethodHandle FALLOCATE = errnoCall("fallocate", JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG);
        static final MethodHandle FLOCK = errnoCall("flock", JAVA_INT, JAVA_INT, JAVA_INT);
    }

    /**
     * fstat, in a holder of its own: glibc exports the symbol only from 2.33; before, fstat is an
     * inline wrapper around {@code __fxstat(_STAT_VER, fd, buf)}, with _STAT_VER 1 on x86-64.
     */
    private static final class Stat {
        private static final int STAT_VER = 1;
        static final MethodHandle FSTAT = LIBC.find("fstat").isPresent()
                ? errnoCall("fstat", JAVA_INT, JAVA_INT, ADDRESS)
                : MethodHandles.insertArguments(errnoCall("__fxstat", JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS), 1, STAT_VER);
    }

    private static final class Memory {
        static final MethodHandle MMAP =
                errnoCall("mmap", ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG);
        static final MethodHandle MUNMAP = errnoCall("munmap", JAVA_INT, ADDRESS, JAVA_LONG);
        static final MethodHandle SYSCONF = errnoCall("sysconf", JAVA_LONG, JAVA_INT);
    }

    private static final class Sockets {
        static final MethodHandle SOCKETPAIR = errnoCall("socketpair", JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS);
        static final MethodHandle SENDMSG = errnoCall("sendmsg", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT);
        static final MethodHandle RECVMSG = errnoCall("recvmsg", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT);
        static final MethodHandle SEND = errnoCall("send", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT);
        static final MethodHandle RECV = errnoCall("recv", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT);
        static final MethodHandle SHUTDOWN = errnoCall("shutdown", JAVA_INT, JAVA_INT, JAVA_INT);
        // fcntl(fd, cmd, ...): the argument is variadic
        static final MethodHandle FCNTL = LINKER.downcallHandle(find("fcntl"),
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), CAPTURE_ERRNO, Linker.Option.firstVariadicArg(2));
    }

    /** Sockets with an address: servers and clients of a path. */
    private static final class Addressed {
        static final MethodHandle SOCKET = errnoCall("socket", JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT);
        static final MethodHandle BIND = errnoCall("bind", JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT);
        static final MethodHandle LISTEN = errnoCall("listen", JAVA_INT, JAVA_INT, JAVA_INT);
        static final MethodHandle ACCEPT4 = errnoCall("accept4", JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT);
        static final MethodHandle CONNECT = errnoCall("connect", JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT);
    }

    private static final class Signals {
        static final MethodHandle SIGACTION = errnoCall("sigaction", JAVA_INT, JAVA_INT, ADDRESS, ADDRESS);
        static final MethodHandle SIGEMPTYSET = errnoCall("sigemptyset", JAVA_INT, ADDRESS);
        static final MethodHandle SIGADDSET = errnoCall("sigaddset", JAVA_INT, ADDRESS, JAVA_INT);
        static final MethodHandle PTHREAD_SIGMASK = plainCall("pthread_sigmask", JAVA_INT, JAVA_INT, ADDRESS, ADDRESS);
        static final MethodHandle PTHREAD_SELF = plainCall("pthread_self", JAVA_LONG);
        static final MethodHandle PTHREAD_KILL = plainCall("pthread_kill", JAVA_INT, JAVA_LONG, JAVA_INT);
        static final MethodHandle SIGRTMIN = plainCall("__libc_current_sigrtmin", JAVA_INT);
    }

    /** Whether there is a terminal: the command line asks, a program embedding Kindling need not. */
    private static final class Tty {
        static final MethodHandle ISATTY = plainCall("isatty", JAVA_INT, JAVA_INT);
    }

    /** The termios calls: bound only where a terminal is there to set up. */
    private static final class Terminals {
        static final MethodHandle TCGETATTR = errnoCall("tcgetattr", JAVA_INT, JAVA_INT, ADDRESS);
        static final MethodHandle TCSETATTR = errnoCall("tcsetattr", JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS);
    }

    /** {@code sizeof(sigset_t)} in glibc. */
    public static final long SIGSET_SIZE = 128;
    /** glibc's {@code struct sigaction} on x86-64: handler, mask, flags, restorer. */
    public static final StructLayout SIGACTION_LAYOUT = MemoryLayout.structLayout(
            ADDRESS.withName("sa_handler"),
            MemoryLayout.sequenceLayout(SIGSET_SIZE, ValueLayout.JAVA_BYTE).withName("sa_mask"),
            JAVA_INT.withName("sa_flags"),
            MemoryLayout.paddingLayout(4),
            ADDRESS.withName("sa_restorer"));

    /** glibc's {@code struct stat} on x86-64. */
    public static final StructLayout STAT_LAYOUT = MemoryLayout.structLayout(
            JAVA_LONG.withName("st_dev"),
            JAVA_LONG.withName("st_ino"),
            JAVA_LONG.withName("st_nlink"),
            JAVA_INT.withName("st_mode"),
            JAVA_INT.withName("st_uid"),
            JAVA_INT.withName("st_gid"),
            MemoryLayout.paddingLayout(4),
            JAVA_LONG.withName("st_rdev"),
            JAVA_LONG.withName("st_size"),
            JAVA_LONG.withName("st_blksize"),
            JAVA_LONG.withName("st_blocks"),
            MemoryLayout.sequenceLayout(2, JAVA_LONG).withName("st_atim"),
            MemoryLayout.sequenceLayout(2, JAVA_LONG).withName("st_mtim"),
            MemoryLayout.sequenceLayout(2, JAVA_LONG).withName("st_ctim"),
            MemoryLayout.paddingLayout(24));
    private static final long ST_MODE = STAT_LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("st_mode"));
    /** {@code BLKGETSIZE64}: a block device's size in bytes. */
    public static final Ioctl BLKGETSIZE64 = Ioctl.ior("BLKGETSIZE64", 0x12, 114, 8);

    private Libc() {}

    private static MethodHandle errnoCall(String name, MemoryLayout ret, MemoryLayout... args) {
        return LINKER.downcallHandle(find(name), FunctionDescriptor.of(ret, args), CAPTURE_ERRNO);
    }

    private static MethodHandle plainCall(String name, MemoryLayout ret, MemoryLayout... args) {
        return LINKER.downcallHandle(find(name), FunctionDescriptor.of(ret, args));
    }

    /** The address of a C library function, e.g. to use it as a no-op signal handler. */
    public static MemorySegment find(String name) {
        return LIBC.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc has no symbol " + name));
    }

    private static int errno(MemorySegment state) {
        return (int) ERRNO.get(state, 0L);
    }

    private static int check(int result, MemorySegment state, String call) {
        if (result < 0) {
            throw new SyscallException(call, errno(state));
        }
        return result;
    }

    private static long check(long result, MemorySegment state, String call) {
        if (result < 0) {
            throw new SyscallException(call, errno(state));
        }
        return result;
    }

    /**
     * True if a call failed with EINTR and is to be repeated. The kick signal is installed without
     * SA_RESTART (so that it ends KVM_RUN), so any blocking call on a kicked thread, or on a thread
     * the host program signals, returns EINTR without having done anything.
     */
    private static boolean interrupted(long result, MemorySegment state) {
        return result < 0 && errno(state) == Errno.EINTR;
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }

    /** Whether {@code fd} is a terminal. */
    public static boolean isatty(Fd fd) {
        try {
            return (int) Tty.ISATTY.invokeExact(fd.value()) == 1;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** tcgetattr into {@code termios} (a {@link Terminal#TERMIOS}). */
    public static void tcgetattr(Fd fd, MemorySegment termios) {
        try {
            MemorySegment state = STATE.get();
            check((int) Terminals.TCGETATTR.invokeExact(state, fd.value(), termios), state, "tcgetattr(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** tcsetattr from {@code termios} (a {@link Terminal#TERMIOS}); {@code action} is e.g. TCSANOW. */
    public static void tcsetattr(Fd fd, int action, MemorySegment termios) {
        try {
            MemorySegment state = STATE.get();
            check((int) Terminals.TCSETATTR.invokeExact(state, fd.value(), action, termios), state,
                    "tcsetattr(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int open(String path, int flags) {
        return open(path, flags, 0);
    }

    /** open; {@code flags} gains O_CLOEXEC, {@code mode} (e.g. 0644) applies when O_CREAT creates the file. */
    public static int open(String path, int flags, int mode) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = STATE.get();
            MemorySegment name = arena.allocateFrom(path);
            int fd;
            do {
                fd = (int) Descriptors.OPEN.invokeExact(state, name, flags | O_CLOEXEC, mode);
            } while (interrupted(fd, state));
            return check(fd, state, "open(" + path + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static void close(int fd) {
        try {
            MemorySegment state = STATE.get();
            int r = (int) Descriptors.CLOSE.invokeExact(state, fd);
            // EINTR on close still releases the descriptor on Linux: never retry.
            if (r < 0 && errno(state) != Errno.EINTR) {
                throw new SyscallException("close(" + fd + ")", errno(state));
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** ioctl with an integer argument (or none: pass 0). Returns the non-negative result. */
    public static int ioctl(Fd fd, Ioctl request, long arg) {
        try {
            MemorySegment state = STATE.get();
            int r = (int) Io.IOCTL_LONG.invokeExact(state, fd.value(), request.number(), arg);
            return r >= 0 ? r : check(r, state, "ioctl(" + request.name() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** ioctl with a pointer argument. */
    public static int ioctl(Fd fd, Ioctl request, MemorySegment arg) {
        try {
            MemorySegment state = STATE.get();
            int r = (int) Io.IOCTL_PTR.invokeExact(state, fd.value(), request.number(), arg);
            return r >= 0 ? r : check(r, state, "ioctl(" + request.name() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * ioctl returning -errno instead of throwing, for calls whose failures are part of normal
     * operation. Not repeated on EINTR: that is how a kick ends KVM_RUN.
     */
    public static int ioctlRaw(int fd, Ioctl request, long arg) {
        try {
            MemorySegment state = STATE.get();
            int r = (int) Io.IOCTL_LONG.invokeExact(state, fd, request.number(), arg);
            return r >= 0 ? r : -errno(state);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** A buffer where calls leave their errno: see {@link #ioctlRaw(MemorySegment, int, Ioctl, long)}. */
    public static MemorySegment newCallState(Arena arena) {
        return arena.allocate(CALL_STATE);
    }

    /**
     * {@link #ioctlRaw(int, Ioctl, long)} with the caller's own errno buffer (from
     * {@link #newCallState}), for a thread that makes the call in a tight loop (KVM_RUN).
     */
    public static int ioctlRaw(MemorySegment callState, int fd, Ioctl request, long arg) {
        try {
            int r = (int) Io.IOCTL_LONG.invokeExact(callState, fd, request.number(), arg);
            return r >= 0 ? r : -errno(callState);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** mmap; returns the address as a zero-length segment (callers reinterpret it to the length). */
    public static MemorySegment mmap(MemorySegment addr, long length, int prot, int flags, int fd, long offset) {
        try {
            MemorySegment state = STATE.get();
            MemorySegment p = (MemorySegment) Memory.MMAP.invokeExact(state, addr, length, prot, flags, fd, offset);
            if (p.address() == -1L) {
                throw new SyscallException("mmap(" + length + " bytes)", errno(state));
            }
            return p;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static void munmap(MemorySegment addr, long length) {
        try {
            MemorySegment state = STATE.get();
            check((int) Memory.MUNMAP.invokeExact(state, addr, length), state, "munmap");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int eventfd(int initval, int flags) {
        try {
            MemorySegment state = STATE.get();
            return check((int) Descriptors.EVENTFD.invokeExact(state, initval, flags | EFD_CLOEXEC), state, "eventfd");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int memfdCreate(String name, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = STATE.get();
            int fd = (int) Files.MEMFD_CREATE.invokeExact(state, arena.allocateFrom(name), flags | MFD_CLOEXEC);
            return check(fd, state, "memfd_create(" + name + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static void ftruncate(Fd fd, long length) {
        try {
            MemorySegment state = STATE.get();
            check((int) Files.FTRUNCATE.invokeExact(state, fd.value(), length), state, "ftruncate(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** The size of a regular file, memfd or block device (lseek to the end). */
    public static long fileSize(Fd fd) {
        try {
            MemorySegment state = STATE.get();
            return check((long) Files.LSEEK.invokeExact(state, fd.value(), 0L, 2 /* SEEK_END */), state,
                    "lseek(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * lseek with SEEK_DATA or SEEK_HOLE (or SEEK_SET/SEEK_END): the resulting offset, or -1 when
     * there is no data at or after {@code offset} (ENXIO).
     */
    public static long lseek(Fd fd, long offset, int whence) {
        try {
            MemorySegment state = STATE.get();
            long r = (long) Files.LSEEK.invokeExact(state, fd.value(), offset, whence);
            if (r < 0 && errno(state) == 6 /* ENXIO */) {
                return -1;
            }
            return check(r, state, "lseek(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * copy_file_range from {@code inOffset} of {@code in} to {@code outOffset} of {@code out} (the
     * descriptors' own offsets are not used); returns the bytes copied, 0 at the source's end.
     */
    public static long copyFileRange(Fd in, long inOffset, Fd out, long outOffset, long length) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment inOff = arena.allocateFrom(JAVA_LONG, inOffset);
            MemorySegment outOff = arena.allocateFrom(JAVA_LONG, outOffset);
            MemorySegment state = STATE.get();
            long r;
            do {
                r = (long) Files.COPY_FILE_RANGE.invokeExact(state, in.value(), inOff, out.value(), outOff, length, 0);
            } while (interrupted(r, state));
            return check(r, state, "copy_file_range(" + in.what() + " -> " + out.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** A new descriptor (close-on-exec) for the same open file. */
    public static int dup(Fd fd) {
        try {
            MemorySegment state = STATE.get();
            return check((int) Sockets.FCNTL.invokeExact(state, fd.value(), F_DUPFD_CLOEXEC, 0), state,
                    "fcntl(" + fd.what() + ", F_DUPFD_CLOEXEC)");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Adds seals (F_SEAL_*) to a memfd made with MFD_ALLOW_SEALING. */
    public static void addSeals(Fd fd, int seals) {
        try {
            MemorySegment state = STATE.get();
            check((int) Sockets.FCNTL.invokeExact(state, fd.value(), F_ADD_SEALS, seals), state,
                    "fcntl(" + fd.what() + ", F_ADD_SEALS)");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** The seals a memfd has. */
    public static int seals(Fd fd) {
        try {
            MemorySegment state = STATE.get();
            return check((int) Sockets.FCNTL.invokeExact(state, fd.value(), F_GET_SEALS, 0), state,
                    "fcntl(" + fd.what() + ", F_GET_SEALS)");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * poll over a {@code struct pollfd[]} segment; returns the ready count, or 0 once
     * {@code timeoutMillis} (-1: none) has passed. A signal does not end the wait: the call is
     * repeated with the time left.
     */
    public static int poll(MemorySegment pollfds, long count, int timeoutMillis) {
        try {
            MemorySegment state = STATE.get();
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.max(0, timeoutMillis));
            int timeout = timeoutMillis;
            while (true) {
                int r = (int) Io.POLL.invokeExact(state, pollfds, count, timeout);
                if (r >= 0 || errno(state) != Errno.EINTR) {
                    return check(r, state, "poll");
                }
                if (timeoutMillis > 0) {
                    // rounded up, so an interrupted wait never ends early
                    long leftNanos = Math.max(0, deadline - System.nanoTime());
                    timeout = (int) ((leftNanos + 999_999) / 1_000_000);
                }
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** read; returns bytes read, or -EAGAIN on a non-blocking fd with nothing to read. */
    public static long read(Fd fd, MemorySegment buf, long count) {
        try {
            MemorySegment state = STATE.get();
            long r;
            do {
                r = (long) Io.READ.invokeExact(state, fd.value(), buf, Math.min(count, buf.byteSize()));
            } while (interrupted(r, state));
            if (r < 0 && errno(state) == Errno.EAGAIN) {
                return -Errno.EAGAIN;
            }
            return check(r, state, "read(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** write; returns bytes written, or -EAGAIN on a full non-blocking fd. */
    public static long write(Fd fd, MemorySegment buf, long count) {
        try {
            MemorySegment state = STATE.get();
            long r;
            do {
                r = (long) Io.WRITE.invokeExact(state, fd.value(), buf, Math.min(count, buf.byteSize()));
            } while (interrupted(r, state));
            if (r < 0 && errno(state) == Errno.EAGAIN) {
                return -Errno.EAGAIN;
            }
            return check(r, state, "write(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static long pread(Fd fd, MemorySegment buf, long count, long offset) {
        try {
            MemorySegment state = STATE.get();
            long r;
            do {
                r = (long) Files.PREAD.invokeExact(state, fd.value(), buf, Math.min(count, buf.byteSize()), offset);
            } while (interrupted(r, state));
            return check(r, state, "pread(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static long pwrite(Fd fd, MemorySegment buf, long count, long offset) {
        try {
            MemorySegment state = STATE.get();
            long r;
            do {
                r = (long) Files.PWRITE.invokeExact(state, fd.value(), buf, Math.min(count, buf.byteSize()), offset);
            } while (interrupted(r, state));
            return check(r, state, "pwrite(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Fails unless {@code iov} holds {@code count} iovecs and the kernel takes that many. */
    private static void checkIoVecs(MemorySegment iov, int count, String call) {
        if (count < 0 || count > IoVec.MAX || count * IoVec.LAYOUT.byteSize() > iov.byteSize()) {
            throw new IllegalArgumentException(call + ": " + count + " iovecs do not fit a " + iov.byteSize()
                    + "-byte array (or exceed IOV_MAX " + IoVec.MAX + ")");
        }
    }

    /** readv into {@code count} iovecs of {@code iov}; returns bytes read, or -EAGAIN on a non-blocking fd with nothing to read. */
    public static long readv(Fd fd, MemorySegment iov, int count) {
        checkIoVecs(iov, count, "readv");
        try {
            MemorySegment state = STATE.get();
            long r;
            do {
                r = (long) Io.READV.invokeExact(state, fd.value(), iov, count);
            } while (interrupted(r, state));
            if (r < 0 && errno(state) == Errno.EAGAIN) {
                return -Errno.EAGAIN;
            }
            return r >= 0 ? r : check(r, state, "readv(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** writev from {@code count} iovecs of {@code iov}; returns bytes written, or -EAGAIN on a full non-blocking fd. */
    public static long writev(Fd fd, MemorySegment iov, int count) {
        checkIoVecs(iov, count, "writev");
        try {
            MemorySegment state = STATE.get();
            long r;
            do {
                r = (long) Io.WRITEV.invokeExact(state, fd.value(), iov, count);
            } while (interrupted(r, state));
            if (r < 0 && errno(state) == Errno.EAGAIN) {
                return -Errno.EAGAIN;
            }
            return r >= 0 ? r : check(r, state, "writev(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** preadv at {@code offset}; returns bytes read (fewer than asked at the end of the file). */
    public static long preadv(Fd fd, MemorySegment iov, int count, long offset) {
        checkIoVecs(iov, count, "preadv");
        try {
            MemorySegment state = STATE.get();
            long r;
            do {
                r = (long) Files.PREADV.invokeExact(state, fd.value(), iov, count, offset);
            } while (interrupted(r, state));
            return r >= 0 ? r : check(r, state, "preadv(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** pwritev at {@code offset}; returns bytes written. */
    public static long pwritev(Fd fd, MemorySegment iov, int count, long offset) {
        checkIoVecs(iov, count, "pwritev");
        try {
            MemorySegment state = STATE.get();
            long r;
            do {
                r = (long) Files.PWRITEV.invokeExact(state, fd.value(), iov, count, offset);
            } while (interrupted(r, state));
            return r >= 0 ? r : check(r, state, "pwritev(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** fsync: data and metadata reach the disk before it returns. */
    public static void fsync(Fd fd) {
        try {
            MemorySegment state = STATE.get();
            int r;
            do {
                r = (int) Disks.FSYNC.invokeExact(state, fd.value());
            } while (interrupted(r, state));
            check(r, state, "fsync(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** fdatasync: the data, and the metadata needed to read it back, reach the disk before it returns. */
    public static void fdatasync(Fd fd) {
        try {
            MemorySegment state = STATE.get();
            int r;
            do {
                r = (int) Disks.FDATASYNC.invokeExact(state, fd.value());
            } while (interrupted(r, state));
            check(r, state, "fdatasync(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * fallocate with {@code mode} 0 or FALLOC_FL_* flags. A file system that lacks the mode fails
     * with EOPNOTSUPP ({@link SyscallException#errno()}).
     */
    public static void fallocate(Fd fd, int mode, long offset, long length) {
        try {
            MemorySegment state = STATE.get();
            int r;
            do {
                r = (int) Disks.FALLOCATE.invokeExact(state, fd.value(), mode, offset, length);
            } while (interrupted(r, state));
            check(r, state, "fallocate(" + fd.what() + ", mode " + mode + ", " + length + " bytes at " + offset + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * flock with {@code op} LOCK_SH, LOCK_EX or LOCK_UN, with LOCK_NB or not; true when done, false
     * when LOCK_NB was given and another open file description holds a conflicting lock.
     */
    public static boolean flock(Fd fd, int op) {
        try {
            MemorySegment state = STATE.get();
            int r;
            do {
                r = (int) Disks.FLOCK.invokeExact(state, fd.value(), op);
            } while (interrupted(r, state));
            if (r < 0 && errno(state) == Errno.EAGAIN) { // EWOULDBLOCK
                return false;
            }
            check(r, state, "flock(" + fd.what() + ")");
            return true;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** fstat into {@code stat} (a {@link #STAT_LAYOUT}). */
    public static void fstat(Fd fd, MemorySegment stat) {
        try {
            MemorySegment state = STATE.get();
            check((int) Stat.FSTAT.invokeExact(state, fd.value(), stat), state, "fstat(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Whether {@code fd} is a block device (a disk, a partition, a loop device). */
    public static boolean isBlockDevice(Fd fd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment stat = arena.allocate(STAT_LAYOUT);
            fstat(fd, stat);
            return (stat.get(JAVA_INT, ST_MODE) & S_IFMT) == S_IFBLK;
        }
    }

    /** The size in bytes of block device {@code fd} (BLKGETSIZE64). */
    public static long blockDeviceSize(Fd fd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment size = arena.allocate(JAVA_LONG);
            ioctl(fd, BLKGETSIZE64, size);
            return size.get(JAVA_LONG, 0);
        }
    }

    /** epoll_create1; {@code flags} gains EPOLL_CLOEXEC. */
    public static int epollCreate1(int flags) {
        try {
            MemorySegment state = STATE.get();
            return check((int) Epolls.EPOLL_CREATE1.invokeExact(state, flags | EPOLL_CLOEXEC), state, "epoll_create1");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** epoll_ctl with {@code op} EPOLL_CTL_ADD, _MOD or _DEL; {@code event} a {@link Epoll#EVENT} (or NULL for DEL). */
    public static void epollCtl(Fd epoll, int op, Fd fd, MemorySegment event) {
        try {
            MemorySegment state = STATE.get();
            int r = (int) Epolls.EPOLL_CTL.invokeExact(state, epoll.value(), op, fd.value(), event);
            if (r < 0) {
                check(r, state, "epoll_ctl(" + epoll.what() + ", " + (op == EPOLL_CTL_ADD ? "ADD" : op == EPOLL_CTL_MOD ? "MOD" : "DEL")
                        + ", " + fd.what() + ")");
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * epoll_wait into {@code events} (room for {@code maxEvents} {@link Epoll#EVENT}s); returns the
     * ready count, or 0 once {@code timeoutMillis} (-1: none) has passed. A signal does not end the
     * wait: the call is repeated with the time left.
     */
    public static int epollWait(Fd epoll, MemorySegment events, int maxEvents, int timeoutMillis) {
        if (maxEvents < 1 || maxEvents * Epoll.EVENT.byteSize() > events.byteSize()) {
            throw new IllegalArgumentException("epoll_wait: " + maxEvents + " events do not fit a " + events.byteSize() + "-byte buffer");
        }
        try {
            MemorySegment state = STATE.get();
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.max(0, timeoutMillis));
            int timeout = timeoutMillis;
            while (true) {
                int r = (int) Epolls.EPOLL_WAIT.invokeExact(state, epoll.value(), events, maxEvents, timeout);
                if (r >= 0) {
                    return r;
                }
                if (errno(state) != Errno.EINTR) {
                    return check(r, state, "epoll_wait(" + epoll.what() + ")");
                }
                if (timeoutMillis > 0) {
                    // rounded up, so an interrupted wait never ends early
                    long leftNanos = Math.max(0, deadline - System.nanoTime());
                    timeout = (int) ((leftNanos + 999_999) / 1_000_000);
                }
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** socketpair(AF_UNIX, type); returns both descriptors as owned {@link Fd}s. */
    public static Fd[] socketpair(int type) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = STATE.get();
            MemorySegment fds = arena.allocate(JAVA_INT, 2);
            check((int) Sockets.SOCKETPAIR.invokeExact(state, AF_UNIX, type | SOCK_CLOEXEC, 0, fds), state, "socketpair");
            return new Fd[] {Fd.adopt(fds.getAtIndex(JAVA_INT, 0), "socketpair[0]"),
                    Fd.adopt(fds.getAtIndex(JAVA_INT, 1), "socketpair[1]")};
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** socket; {@code type} gains SOCK_CLOEXEC. Returns the descriptor. */
    public static int socket(int domain, int type, int protocol) {
        try {
            MemorySegment state = STATE.get();
            return check((int) Addressed.SOCKET.invokeExact(state, domain, type | SOCK_CLOEXEC, protocol), state, "socket");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** bind to {@code addr} (its first {@code length} bytes); {@code what} names the address in errors. */
    public static void bind(Fd fd, MemorySegment addr, int length, String what) {
        try {
            MemorySegment state = STATE.get();
            check((int) Addressed.BIND.invokeExact(state, fd.value(), addr, length), state, "bind(" + what + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static void listen(Fd fd, int backlog) {
        try {
            MemorySegment state = STATE.get();
            check((int) Addressed.LISTEN.invokeExact(state, fd.value(), backlog), state, "listen(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** accept4 without the peer's address; {@code flags} gains SOCK_CLOEXEC. Returns the connection's descriptor. */
    public static int accept4(Fd fd, int flags) {
        try {
            MemorySegment state = STATE.get();
            int r;
            do {
                r = (int) Addressed.ACCEPT4.invokeExact(state, fd.value(), MemorySegment.NULL, MemorySegment.NULL,
                        flags | SOCK_CLOEXEC);
            } while (interrupted(r, state));
            return check(r, state, "accept4(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * connect to {@code addr} (its first {@code length} bytes); {@code what} names the address in
     * errors. Repeated on EINTR, which leaves an AF_UNIX socket unconnected.
     */
    public static void connect(Fd fd, MemorySegment addr, int length, String what) {
        try {
            MemorySegment state = STATE.get();
            int r;
            do {
                r = (int) Addressed.CONNECT.invokeExact(state, fd.value(), addr, length);
            } while (interrupted(r, state));
            check(r, state, "connect(" + what + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * send of the first {@code count} bytes of {@code buf} (MSG_NOSIGNAL is always added: a peer gone
     * is EPIPE, never SIGPIPE). Returns bytes sent, or minus the errno for EAGAIN, EPIPE and
     * ECONNRESET, which a relay handles; other errors throw.
     */
    public static long send(Fd fd, MemorySegment buf, long count, int flags) {
        try {
            MemorySegment state = STATE.get();
            long r;
            do {
                r = (long) Sockets.SEND.invokeExact(state, fd.value(), buf, Math.min(count, buf.byteSize()), flags | MSG_NOSIGNAL);
            } while (interrupted(r, state));
            return relayResult(r, state, "send(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** recv into {@code buf}: bytes read, 0 at end of stream, or minus the errno for EAGAIN and ECONNRESET. */
    public static long recv(Fd fd, MemorySegment buf, long count, int flags) {
        try {
            MemorySegment state = STATE.get();
            long r;
            do {
                r = (long) Sockets.RECV.invokeExact(state, fd.value(), buf, Math.min(count, buf.byteSize()), flags);
            } while (interrupted(r, state));
            return relayResult(r, state, "recv(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static long relayResult(long r, MemorySegment state, String what) {
        if (r < 0) {
            int e = errno(state);
            if (e == Errno.EAGAIN || e == Errno.EPIPE || e == Errno.ECONNRESET) {
                return -e;
            }
        }
        return check(r, state, what);
    }

    /** shutdown(how: SHUT_RD, SHUT_WR, SHUT_RDWR); a socket no longer connected (ENOTCONN) is not an error. */
    public static void shutdown(Fd fd, int how) {
        try {
            MemorySegment state = STATE.get();
            int r = (int) Sockets.SHUTDOWN.invokeExact(state, fd.value(), how);
            if (r < 0 && errno(state) == Errno.ENOTCONN) {
                return;
            }
            check(r, state, "shutdown(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Sets or clears O_NONBLOCK. */
    public static void setNonBlocking(Fd fd, boolean on) {
        try {
            MemorySegment state = STATE.get();
            int flags = check((int) Sockets.FCNTL.invokeExact(state, fd.value(), F_GETFL, 0), state, "fcntl(" + fd.what() + ", F_GETFL)");
            int wanted = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
            if (wanted != flags) {
                check((int) Sockets.FCNTL.invokeExact(state, fd.value(), F_SETFL, wanted), state, "fcntl(" + fd.what() + ", F_SETFL)");
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static long sendmsg(Fd fd, MemorySegment msghdr, int flags) {
        try {
            MemorySegment state = STATE.get();
            long r;
            do {
                r = (long) Sockets.SENDMSG.invokeExact(state, fd.value(), msghdr, flags);
            } while (interrupted(r, state));
            return check(r, state, "sendmsg(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static long recvmsg(Fd fd, MemorySegment msghdr, int flags) {
        try {
            MemorySegment state = STATE.get();
            long r;
            do {
                r = (long) Sockets.RECVMSG.invokeExact(state, fd.value(), msghdr, flags | MSG_CMSG_CLOEXEC);
            } while (interrupted(r, state));
            return check(r, state, "recvmsg(" + fd.what() + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static void sigaction(int signal, MemorySegment act, MemorySegment oldact) {
        try {
            MemorySegment state = STATE.get();
            check((int) Signals.SIGACTION.invokeExact(state, signal, act, oldact), state, "sigaction(" + signal + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Fills {@code set} (a {@link #SIGSET_SIZE}-byte segment) with exactly {@code signals}. */
    public static void sigset(MemorySegment set, int... signals) {
        try {
            MemorySegment state = STATE.get();
            check((int) Signals.SIGEMPTYSET.invokeExact(state, set), state, "sigemptyset");
            for (int s : signals) {
                check((int) Signals.SIGADDSET.invokeExact(state, set, s), state, "sigaddset(" + s + ")");
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static void pthreadSigmask(int how, MemorySegment set, MemorySegment old) {
        try {
            int r = (int) Signals.PTHREAD_SIGMASK.invokeExact(how, set, old);
            if (r != 0) {
                throw new SyscallException("pthread_sigmask", r);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static long pthreadSelf() {
        try {
            return (long) Signals.PTHREAD_SELF.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** pthread_kill; returns 0 or the error number (ESRCH when the thread has ended). */
    public static int pthreadKill(long thread, int signal) {
        try {
            return (int) Signals.PTHREAD_KILL.invokeExact(thread, signal);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int sigrtmin() {
        try {
            return (int) Signals.SIGRTMIN.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static long pageSize() {
        try {
            MemorySegment state = STATE.get();
            return check((long) Memory.SYSCONF.invokeExact(state, 30 /* _SC_PAGESIZE */), state, "sysconf(_SC_PAGESIZE)");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
