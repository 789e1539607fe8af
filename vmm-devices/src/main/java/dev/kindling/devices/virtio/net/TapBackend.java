package dev.kindling.devices.virtio.net;

import static dev.kindling.devices.virtio.net.VirtioNet.GUEST_CSUM;
import static dev.kindling.devices.virtio.net.VirtioNet.GUEST_ECN;
import static dev.kindling.devices.virtio.net.VirtioNet.GUEST_TSO4;
import static dev.kindling.devices.virtio.net.VirtioNet.GUEST_TSO6;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import dev.kindling.sys.Errno;
import dev.kindling.sys.Fd;
import dev.kindling.sys.IoVec;
import dev.kindling.sys.Libc;
import dev.kindling.sys.SyscallException;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;

/**
 * A tap device ({@code /dev/net/tun}, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR), non-blocking: the usual
 * root set-up, as Firecracker's {@code host_dev_name}. Frames carry the 12-byte vnet header both
 * ways; the tap hands the guest checksum-offloaded and TSO frames only once it accepted them
 * ({@link #setGuestOffloads}).
 */
public final class TapBackend implements NetBackend {
    private static final System.Logger LOG = System.getLogger(TapBackend.class.getName());
    /** The largest frame a tap hands over: a vnet header and the largest frame ({@link VirtioNet#MAX_PACKET}). */
    static final int MAX_READ = VirtioNet.MAX_PACKET;

    private final String name;
    private final Fd tap;
    private final Readiness readiness;
    private final Arena arena = Arena.ofShared();
    /**
     * A read gets the caller's buffer and then this byte: the tap truncates a frame longer than what
     * it is given (the read returns the bytes it was given), so a read that reaches the spill byte
     * was a frame too long for the caller, dropped whole rather than delivered cut.
     */
    private final MemorySegment spill = arena.allocate(1);
    private final MemorySegment iov = arena.allocate(IoVec.LAYOUT, 2);
    /** For a caller's buffer on the Java heap, which readv cannot take. */
    private MemorySegment heapScratch;
    private static final long DROP_LOG_INTERVAL_NANOS = 10_000_000_000L;
    private volatile boolean failed;
    private volatile int offloads;
    /** When a refused frame was last logged; used by the device thread only. */
    private long lastDropLog;
    private boolean closed;

    private TapBackend(String name, Fd tap, Readiness readiness) {
        this.name = name;
        this.tap = tap;
        this.readiness = readiness;
    }

    /** Attaches to tap {@code name}, creating it if it does not exist (as root can). */
    public static TapBackend open(String name) throws IOException {
        Tun.checkName(name);
        byte[] bytes = name.getBytes(StandardCharsets.UTF_8);
        Fd fd;
        try {
            fd = Fd.adopt(Libc.open(Tun.DEVICE, Libc.O_RDWR | Libc.O_NONBLOCK), "tap " + name);
        } catch (SyscallException e) {
            throw new IOException("tap " + name + ": cannot open " + Tun.DEVICE + ": " + Errno.name(e.errno())
                    + (e.errno() == Errno.ENOENT ? " (no tun driver: modprobe tun)" : ""), e);
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ifr = a.allocate(Tun.IFREQ);
            MemorySegment.copy(bytes, 0, ifr, JAVA_BYTE, 0, bytes.length);
            ifr.set(JAVA_SHORT, Tun.IFR_FLAGS,
                    (short) (Tun.IFF_TAP | Tun.IFF_NO_PI | Tun.IFF_VNET_HDR));
            Libc.ioctl(fd, Tun.TUNSETIFF, ifr);
            Libc.ioctl(fd, Tun.TUNSETVNETHDRSZ, a.allocateFrom(JAVA_INT, VirtioNet.VNET_HEADER_SIZE));
            Libc.ioctl(fd, Tun.TUNSETOFFLOAD, 0);
            return new TapBackend(name, fd, new Readiness(fd));
        } catch (SyscallException e) {
            fd.close();
            throw new IOException("tap " + name + ": " + e.getMessage() + explain(e.errno()), e);
        } catch (RuntimeException | Error e) {
            fd.close();
            throw e;
        }
    }

    private static String explain(int errno) {
        return switch (errno) {
            case Errno.EPERM -> ": not permitted (needs root or CAP_NET_ADMIN, or a tap made for this user)";
            case Errno.EBUSY -> ": the tap is attached elsewhere (another process or VM has it open)";
            case Errno.EINVAL -> ": a device of that name exists and is not a tap with these flags";
            default -> "";
        };
    }

    /** The TUN_F_* flags that {@code guestFeatures} allow the tap to hand the guest. */
    static int offloadFlags(long guestFeatures) {
        if ((guestFeatures & GUEST_CSUM) == 0) {
            return 0; // segmentation offloads need checksum offload
        }
        int flags = Tun.TUN_F_CSUM;
        if ((guestFeatures & GUEST_TSO4) != 0) {
            flags |= Tun.TUN_F_TSO4;
        }
        if ((guestFeatures & GUEST_TSO6) != 0) {
            flags |= Tun.TUN_F_TSO6;
        }
        if ((guestFeatures & GUEST_ECN) != 0 && (flags & (Tun.TUN_F_TSO4 | Tun.TUN_F_TSO6)) != 0) {
            flags |= Tun.TUN_F_TSO_ECN;
        }
        return flags;
    }

    /** The interface name the kernel gave (as asked). */
    public String name() {
        return name;
    }

    @Override
    public Fd readable() {
        return readiness.fd();
    }

    @Override
    public boolean vnetHeader() {
        return true;
    }

    @Override
    public void setGuestOffloads(long guestFeatures) {
        int flags = offloadFlags(guestFeatures);
        try {
            Libc.ioctl(tap, Tun.TUNSETOFFLOAD, flags);
            offloads = flags;
        } catch (SyscallException e) {
            // The guest then just gets no offloaded frames: safe, only slower.
            LOG.log(Level.WARNING, "tap {0}: TUNSETOFFLOAD 0x{1} refused: {2}", name, Integer.toHexString(flags),
                    e.getMessage());
        }
    }

    /** The TUN_F_* offloads the tap took: what it may hand the guest (0 until the guest accepted some). */
    int offloads() {
        return offloads;
    }

    @Override
    public int receive(MemorySegment into) {
        if (failed) {
            return 0;
        }
        MemorySegment buf = into;
        if (!into.isNative()) {
            if (heapScratch == null) {
                heapScratch = arena.allocate(MAX_READ);
            }
            buf = heapScratch.asSlice(0, Math.min(into.byteSize(), MAX_READ));
        }
        IoVec.set(iov, 0, buf);
        IoVec.set(iov, 1, spill);
        for (int tries = 0; tries < 64; tries++) {
            long n;
            try {
                n = Libc.readv(tap, iov, 2);
            } catch (SyscallException e) {
                if (e.errno() == Errno.EINVAL) {
                    continue; // a buffer shorter than the vnet header: the tap dropped the frame
                }
                fail(e);
                return 0;
            }
            if (n <= 0) {
                return 0;
            }
            if (n > buf.byteSize()) {
                continue; // cut short at the spill byte: too long for the caller, dropped as the contract says
            }
            if (buf != into) {
                MemorySegment.copy(buf, 0, into, 0, n);
            }
            return (int) n;
        }
        return 0;
    }

    @Override
    public boolean send(MemorySegment frame) {
        if (failed) {
            return false;
        }
        try {
            long n = Libc.write(tap, frame, frame.byteSize());
            return n == frame.byteSize();
        } catch (SyscallException e) {
            if (tapGone(e.errno())) {
                fail(e);
            } else {
                dropped(e);
            }
            return false;
        }
    }

    /**
     * Whether a write's errno means the tap is gone for good. Anything else (EIO: link down,
     * EINVAL: a vnet header it refused, ENOMEM or ENOBUFS: memory short for a moment) costs the one
     * frame only.
     */
    static boolean tapGone(int errno) {
        return errno == Errno.EBADF || errno == Errno.EBADFD;
    }

    /** Logs a dropped frame's reason, at most once per {@link #DROP_LOG_INTERVAL_NANOS}. */
    private void dropped(SyscallException e) {
        long now = System.nanoTime();
        if (lastDropLog == 0 || now - lastDropLog >= DROP_LOG_INTERVAL_NANOS) {
            lastDropLog = now;
            LOG.log(Level.DEBUG, "tap {0} refused a frame (further refusals are not logged for a while): {1}", name,
                    e.getMessage());
        }
    }

    private void fail(SyscallException e) {
        failed = true;
        if (readiness.stop()) {
            LOG.log(Level.WARNING, "tap {0} failed, no more frames: {1}", name, e.getMessage());
        }
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        readiness.stop();
        readiness.close();
        tap.close();
        arena.close();
    }

    @Override
    public String toString() {
        return "TapBackend[" + name + "]";
    }
}
