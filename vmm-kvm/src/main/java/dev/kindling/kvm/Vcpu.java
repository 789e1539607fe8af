package dev.kindling.kvm;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import dev.kindling.sys.CLayouts;
import dev.kindling.sys.Errno;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Ioctl;
import dev.kindling.sys.Libc;
import dev.kindling.sys.Mapping;
import dev.kindling.sys.SyscallException;
import dev.kindling.sys.ThreadKick;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * A virtual CPU. One thread at a time calls {@link #run()}; any thread may {@link #kick()} it. The
 * register accessors wait (in the kernel) while another thread is inside {@code run()}.
 *
 * <p>{@link #close()} from another thread kicks a running vCPU and waits, for a bounded time, for
 * {@code run()} to return; later {@code run()} calls throw {@link IllegalStateException}. Segments
 * handed out (the run page, {@link VcpuExit.Io#data()}) become inaccessible on close instead of
 * dangling.
 */
public final class Vcpu implements AutoCloseable {
    // Runner states. A kicker signals only after moving RUNNING to KICKING, and the runner cannot
    // return from run() until the kicker is done (KICKING, or LEAVING once the runner asked to go),
    // so pthread_kill never targets a thread that has left run(), let alone one that has died.
    // At most one signal per run: the kick signal is real-time, so signals would queue up and a
    // stream of kicks could keep the runner busy in its signal handler forever. One is enough,
    // because immediate_exit is set before it is sent.
    //   runner: IDLE -> ENTERING -> RUNNING|KICKED -> (decode) -> IDLE, or KICKING -> LEAVING -> IDLE
    //   kicker: RUNNING -> KICKING -> KICKED, or LEAVING -> IDLE
    //   close:  IDLE -> CLOSED
    private static final int IDLE = 0, ENTERING = 1, RUNNING = 2, KICKING = 3, KICKED = 4, LEAVING = 5, CLOSED = 6;

    private static final VarHandle RUN_BYTE = JAVA_BYTE.varHandle();
    /**
     * How long {@link #close()} waits for a thread inside run() to leave it. A kicked thread leaves
     * within microseconds; this only bounds the wait for one that cannot take the kick.
     */
    static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(2);

    private static final long MSRS_NMSRS = CLayouts.offsetOf(KvmStructs.KVM_MSRS, "nmsrs");
    private static final long MSRS_ENTRIES = CLayouts.offsetOf(KvmStructs.KVM_MSRS, "entries");
    private static final long MSR_SIZE = KvmStructs.KVM_MSR_ENTRY.byteSize();
    /** Size of the legacy struct kvm_xsave. */
    public static final int XSAVE_SIZE = (int) KvmStructs.KVM_XSAVE.byteSize();
    private static final long MSR_INDEX = CLayouts.offsetOf(KvmStructs.KVM_MSR_ENTRY, "index");
    private static final long MSR_DATA = CLayouts.offsetOf(KvmStructs.KVM_MSR_ENTRY, "data");
    private static final long CPUID_NENT = CLayouts.offsetOf(KvmStructs.KVM_CPUID2, "nent");
    private static final long CPUID_ENTRIES = CLayouts.offsetOf(KvmStructs.KVM_CPUID2, "entries");

    private final Vm vm;
    private final int id;
    private final Fd fd;
    /** Cached for the hot path; valid until CLOSED, which run() cannot enter. */
    private final int fdNumber;
    private final Mapping mapping;
    /** Scopes every segment we hand out, so close() revokes them. */
    private final Arena arena;
    private final MemorySegment run;
    /** KVM_RUN's errno; only the thread inside run() uses it. */
    private final MemorySegment callState;

    private final AtomicInteger state = new AtomicInteger(IDLE);
    private volatile boolean closeRequested;
    /** Touched only by the thread inside run(). */
    private Thread boundThread;
    /** Written in ENTERING, read by kickers in KICKING. */
    private volatile long pthread;
    private volatile boolean measureRunTime;
    /** Written only by the thread inside run(), while measured. */
    private long runTimeNanos, lastRunEndNanos;

    @SuppressWarnings("restricted") // the mapping is ours and exactly this long; the arena bounds its life
    Vcpu(Vm vm, int id, Fd fd, Mapping mapping) {
        this.vm = vm;
        this.id = id;
        this.fd = fd;
        this.fdNumber = fd.value();
        this.mapping = mapping;
        this.arena = Arena.ofShared();
        this.run = mapping.segment().reinterpret(arena, null);
        this.callState = Libc.newCallState(Arena.ofAuto()); // a shared arena would make each call acquire it
    }

    public int id() {
        return id;
    }

    public Fd fd() {
        return fd;
    }

    /** The whole vCPU mapping (kvm_run, then the PIO data page, ...), bounds-checked. */
    public MemorySegment runPage() {
        return run;
    }

    // ---- running

    /**
     * KVM_RUN: enters the guest until it exits, and decodes the exit. Returns {@link VcpuExit#INTERRUPTED}
     * after a {@link #kick()}, a signal or {@link #setImmediateExit(boolean) immediate_exit}; in that
     * case it clears immediate_exit, so each kick ends exactly the run in progress or the next one.
     */
    public VcpuExit run() {
        enter();
        try {
            int r = runIoctl();
            // Decoded before leave(): close() cannot unmap the page under us meanwhile.
            return r >= 0 ? decode() : failed(r);
        } finally {
            leave();
        }
    }

    /** KVM_RUN itself; kept apart from run() so that run() stays small enough to inline into an exit loop. */
    private int runIoctl() {
        boolean timed = measureRunTime;
        long start = timed ? System.nanoTime() : 0;
        int r = Libc.ioctlRaw(callState, fdNumber, KvmIoctls.KVM_RUN, 0);
        // An AP leaving wait-for-SIPI (INIT/SIPI from another vCPU) returns EAGAIN: enter again.
        while (r == -Errno.EAGAIN) {
            r = Libc.ioctlRaw(callState, fdNumber, KvmIoctls.KVM_RUN, 0);
        }
        if (timed) {
            long end = System.nanoTime();
            runTimeNanos += end - start;
            lastRunEndNanos = end;
        }
        return r;
    }

    private VcpuExit failed(int r) {
        if (r == -Errno.EINTR) {
            setImmediateExit(false);
            return VcpuExit.INTERRUPTED;
        }
        throw new SyscallException("ioctl(KVM_RUN) on vcpu " + id, -r);
    }

    /**
     * For benchmarks: while on, each KVM_RUN is timed with the monotonic clock ({@link System#nanoTime()})
     * read just before and just after the ioctl, two reads per run. Off by default.
     */
    public void measureRunTime(boolean on) {
        measureRunTime = on;
    }

    /**
     * Nanoseconds spent inside KVM_RUN while {@link #measureRunTime(boolean) measured}; the rest of the
     * vCPU thread's time between two exits is user space (decoding the exit, the device, re-entering).
     * Like {@link #lastRunEndNanos()}, read it on the vCPU's thread (from a device) or after run() has
     * returned there and the reader has synchronized with that thread (for example, the machine ended).
     */
    public long runTimeNanos() {
        return runTimeNanos;
    }

    /** {@link System#nanoTime()} when the last measured KVM_RUN returned: the time of the exit being handled. */
    public long lastRunEndNanos() {
        return lastRunEndNanos;
    }

    private void enter() {
        if (!state.compareAndSet(IDLE, ENTERING)) {
            throw new IllegalStateException(state.get() == CLOSED ? "vcpu " + id + " is closed"
                    : "vcpu " + id + " is already running on another thread");
        }
        try {
            if (closeRequested) {
                throw new IllegalStateException("vcpu " + id + " is closed");
            }
            Thread t = Thread.currentThread();
            if (t != boundThread || t.isVirtual()) {
                bind(t);
            }
        } catch (RuntimeException | Error e) {
            state.set(IDLE); // kickers ignore ENTERING, so nobody else changed it
            throw e;
        }
        // A volatile store (full fence): orders it before the kernel reads immediate_exit,
        // pairing with kick(), which stores immediate_exit before it reads the state.
        state.set(RUNNING);
    }

    /** Makes {@code t} the thread kicks go to. A virtual thread may move between carriers: looked up every time. */
    private void bind(Thread t) {
        pthread = ThreadKick.prepareCurrentThread();
        boundThread = t;
    }

    private void leave() {
        while (true) {
            int s = state.get();
            if (s == RUNNING || s == KICKED) {
                if (state.compareAndSet(s, IDLE)) {
                    return;
                }
            } else if (s == KICKING) {
                // Ask the kicker to hand over; waiting for RUNNING could starve under constant kicks.
                state.compareAndSet(KICKING, LEAVING);
            } else if (s == LEAVING) {
                Thread.onSpinWait(); // the kicker sets IDLE once pthread_kill has returned
            } else {
                return; // IDLE: handed over by the kicker (or CLOSED right after)
            }
        }
    }

    private VcpuExit decode() {
        MemorySegment p = run;
        int reason = p.get(JAVA_INT, KvmRun.EXIT_REASON);
        // Port and MMIO exits are nearly all; the rest is decoded apart, keeping this path short.
        return switch (reason) {
            case KvmConstants.EXIT_IO -> new VcpuExit.Io(
                    p.get(JAVA_BYTE, KvmRun.IO_DIRECTION) == KvmConstants.EXIT_IO_OUT
                            ? VcpuExit.IoDirection.OUT : VcpuExit.IoDirection.IN,
                    Short.toUnsignedInt(p.get(JAVA_SHORT, KvmRun.IO_PORT)),
                    Byte.toUnsignedInt(p.get(JAVA_BYTE, KvmRun.IO_SIZE)),
                    p.get(JAVA_INT, KvmRun.IO_COUNT),
                    p.get(JAVA_LONG, KvmRun.IO_DATA_OFFSET),
                    p);
            case KvmConstants.EXIT_MMIO -> {
                int len = p.get(JAVA_INT, KvmRun.MMIO_LEN);
                long data = p.get(JAVA_LONG, KvmRun.MMIO_DATA);
                if (len < 8) {
                    data &= (1L << (8 * len)) - 1;
                }
                yield new VcpuExit.Mmio(p.get(JAVA_LONG, KvmRun.MMIO_PHYS_ADDR), data, len,
                        p.get(JAVA_BYTE, KvmRun.MMIO_IS_WRITE) != 0, p);
            }
            default -> decodeOther(p, reason);
        };
    }

    private VcpuExit decodeOther(MemorySegment p, int reason) {
        return switch (reason) {
            case KvmConstants.EXIT_HLT -> VcpuExit.HLT;
            case KvmConstants.EXIT_INTR -> {
                setImmediateExit(false);
                yield VcpuExit.INTERRUPTED;
            }
            case KvmConstants.EXIT_IRQ_WINDOW_OPEN -> VcpuExit.IRQ_WINDOW_OPEN;
            case KvmConstants.EXIT_IOAPIC_EOI -> new VcpuExit.IoapicEoi(Byte.toUnsignedInt(p.get(JAVA_BYTE, KvmRun.EOI_VECTOR)));
            case KvmConstants.EXIT_SHUTDOWN -> VcpuExit.SHUTDOWN;
            case KvmConstants.EXIT_SYSTEM_EVENT -> new VcpuExit.SystemEvent(p.get(JAVA_INT, KvmRun.SYSTEM_EVENT_TYPE),
                    p.get(JAVA_LONG, KvmRun.SYSTEM_EVENT_DATA),
                    longs(p, KvmRun.SYSTEM_EVENT_DATA, p.get(JAVA_INT, KvmRun.SYSTEM_EVENT_NDATA)));
            case KvmConstants.EXIT_INTERNAL_ERROR -> new VcpuExit.InternalError(p.get(JAVA_INT, KvmRun.INTERNAL_SUBERROR),
                    longs(p, KvmRun.INTERNAL_DATA, p.get(JAVA_INT, KvmRun.INTERNAL_NDATA)));
            case KvmConstants.EXIT_FAIL_ENTRY -> new VcpuExit.FailEntry(p.get(JAVA_LONG, KvmRun.FAIL_ENTRY_REASON),
                    p.get(JAVA_INT, KvmRun.FAIL_ENTRY_CPU));
            case KvmConstants.EXIT_EXCEPTION -> new VcpuExit.GuestException(p.get(JAVA_INT, KvmRun.EX_EXCEPTION),
                    p.get(JAVA_INT, KvmRun.EX_ERROR_CODE));
            case KvmConstants.EXIT_UNKNOWN -> new VcpuExit.Unknown(reason, p.get(JAVA_LONG, KvmRun.HW_EXIT_REASON));
            default -> new VcpuExit.Unknown(reason, 0);
        };
    }

    /** {@code n} words from the run page, {@code n} clamped to the array's capacity. */
    private static long[] longs(MemorySegment p, long at, int n) {
        n = Math.min(KvmRun.MAX_DATA, Math.max(0, n));
        long[] v = new long[n];
        MemorySegment.copy(p, JAVA_LONG, at, v, 0, n);
        return v;
    }

    /**
     * Makes {@link #run()} return {@link VcpuExit#INTERRUPTED} soon: sets immediate_exit (so a run
     * about to start returns at once) and signals the thread if it is inside run() and has not been
     * signalled yet. Safe from any thread, any number of times, also after close.
     */
    public void kick() {
        if (state.get() == CLOSED) {
            return;
        }
        try {
            RUN_BYTE.setVolatile(run, KvmRun.IMMEDIATE_EXIT, (byte) 1);
        } catch (IllegalStateException closedMeanwhile) {
            return;
        }
        if (state.compareAndSet(RUNNING, KICKING)) {
            try {
                ThreadKick.kick(pthread);
            } finally {
                if (!state.compareAndSet(KICKING, KICKED)) {
                    state.set(IDLE); // the runner is LEAVING and waits for this
                }
            }
        }
    }

    /** kvm_run.immediate_exit: while set, KVM_RUN returns EINTR without entering the guest. */
    public void setImmediateExit(boolean exit) {
        RUN_BYTE.setVolatile(run, KvmRun.IMMEDIATE_EXIT, (byte) (exit ? 1 : 0));
    }

    public boolean immediateExit() {
        return (byte) RUN_BYTE.getVolatile(run, KvmRun.IMMEDIATE_EXIT) != 0;
    }

    /** kvm_run.request_interrupt_window: exit with IrqWindowOpen once the guest can take an interrupt. */
    public void setRequestInterruptWindow(boolean request) {
        run.set(JAVA_BYTE, KvmRun.REQUEST_INTERRUPT_WINDOW, (byte) (request ? 1 : 0));
    }

    public boolean readyForInterruptInjection() {
        return run.get(JAVA_BYTE, KvmRun.READY_FOR_INTERRUPT_INJECTION) != 0;
    }

    /** The guest's RFLAGS.IF at the last exit. */
    public boolean ifFlag() {
        return run.get(JAVA_BYTE, KvmRun.IF_FLAG) != 0;
    }

    public long cr8() {
        return run.get(JAVA_LONG, KvmRun.CR8);
    }

    public void setCr8(long cr8) {
        run.set(JAVA_LONG, KvmRun.CR8, cr8);
    }

    public long apicBase() {
        return run.get(JAVA_LONG, KvmRun.APIC_BASE);
    }

    // ---- registers and state

    /** An ioctl that fills a {@code layout}-shaped struct, decoded by {@code decode}. */
    private <T> T getStruct(Ioctl request, MemoryLayout layout, Function<MemorySegment, T> decode) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(layout);
            Libc.ioctl(fd, request, s);
            return decode.apply(s);
        }
    }

    /** An ioctl that takes a {@code layout}-shaped struct, filled by {@code encode}. */
    private void setStruct(Ioctl request, MemoryLayout layout, Consumer<MemorySegment> encode) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(layout);
            encode.accept(s);
            Libc.ioctl(fd, request, s);
        }
    }

    public Regs getRegs() {
        return getStruct(KvmIoctls.KVM_GET_REGS, KvmStructs.KVM_REGS, Regs::read);
    }

    public void setRegs(Regs regs) {
        setStruct(KvmIoctls.KVM_SET_REGS, KvmStructs.KVM_REGS, regs::write);
    }

    public Sregs getSregs() {
        return getStruct(KvmIoctls.KVM_GET_SREGS, KvmStructs.KVM_SREGS, Sregs::read);
    }

    public void setSregs(Sregs sregs) {
        setStruct(KvmIoctls.KVM_SET_SREGS, KvmStructs.KVM_SREGS, sregs::write);
    }

    public Fpu getFpu() {
        return getStruct(KvmIoctls.KVM_GET_FPU, KvmStructs.KVM_FPU, Fpu::read);
    }

    public void setFpu(Fpu fpu) {
        setStruct(KvmIoctls.KVM_SET_FPU, KvmStructs.KVM_FPU, fpu::write);
    }

    /** KVM_GET_MSRS for {@code indices}; fails naming the first MSR KVM would not read. */
    public List<Msr> getMsrs(int... indices) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = msrBuffer(a, indices.length);
            for (int i = 0; i < indices.length; i++) {
                s.set(JAVA_INT, MSRS_ENTRIES + i * MSR_SIZE + MSR_INDEX, indices[i]);
            }
            int n = Libc.ioctl(fd, KvmIoctls.KVM_GET_MSRS, s);
            if (n < indices.length) {
                throw new IllegalArgumentException("KVM_GET_MSRS read " + n + " of " + indices.length
                        + " MSRs: MSR 0x" + Integer.toHexString(indices[n]) + " is not supported");
            }
            List<Msr> msrs = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                long at = MSRS_ENTRIES + i * MSR_SIZE;
                msrs.add(new Msr(s.get(JAVA_INT, at + MSR_INDEX), s.get(JAVA_LONG, at + MSR_DATA)));
            }
            return List.copyOf(msrs);
        }
    }

    /** KVM_GET_MSRS for {@code indices}: the MSRs before the first KVM would not read (all, if it read all). */
    public List<Msr> getMsrsPrefix(int... indices) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = msrBuffer(a, indices.length);
            for (int i = 0; i < indices.length; i++) {
                s.set(JAVA_INT, MSRS_ENTRIES + i * MSR_SIZE + MSR_INDEX, indices[i]);
            }
            int n = Libc.ioctl(fd, KvmIoctls.KVM_GET_MSRS, s);
            List<Msr> msrs = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                long at = MSRS_ENTRIES + i * MSR_SIZE;
                msrs.add(new Msr(s.get(JAVA_INT, at + MSR_INDEX), s.get(JAVA_LONG, at + MSR_DATA)));
            }
            return List.copyOf(msrs);
        }
    }

    /** KVM_SET_MSRS: how many of {@code msrs} KVM set (it stops at the first it rejects). */
    public int setMsrsPrefix(List<Msr> msrs) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = msrBuffer(a, msrs.size());
            for (int i = 0; i < msrs.size(); i++) {
                long at = MSRS_ENTRIES + i * MSR_SIZE;
                s.set(JAVA_INT, at + MSR_INDEX, msrs.get(i).index());
                s.set(JAVA_LONG, at + MSR_DATA, msrs.get(i).value());
            }
            return Libc.ioctl(fd, KvmIoctls.KVM_SET_MSRS, s);
        }
    }

    /** KVM_SET_MSRS; fails naming the first MSR KVM rejected. */
    public void setMsrs(List<Msr> msrs) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = msrBuffer(a, msrs.size());
            for (int i = 0; i < msrs.size(); i++) {
                long at = MSRS_ENTRIES + i * MSR_SIZE;
                s.set(JAVA_INT, at + MSR_INDEX, msrs.get(i).index());
                s.set(JAVA_LONG, at + MSR_DATA, msrs.get(i).value());
            }
            int n = Libc.ioctl(fd, KvmIoctls.KVM_SET_MSRS, s);
            if (n < msrs.size()) {
                throw new IllegalArgumentException("KVM_SET_MSRS set " + n + " of " + msrs.size() + " MSRs: rejected "
                        + msrs.get(n));
            }
        }
    }

    private static MemorySegment msrBuffer(Arena a, int count) {
        MemorySegment s = a.allocate(MSRS_ENTRIES + count * MSR_SIZE, 8);
        s.set(JAVA_INT, MSRS_NMSRS, count);
        return s;
    }

    /** KVM_SET_CPUID2: what CPUID reports to the guest. */
    public void setCpuid2(List<CpuidEntry> entries) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(CPUID_ENTRIES + entries.size() * CpuidEntry.SIZE, 8);
            s.set(JAVA_INT, CPUID_NENT, entries.size());
            for (int i = 0; i < entries.size(); i++) {
                entries.get(i).write(s, CPUID_ENTRIES + i * CpuidEntry.SIZE);
            }
            Libc.ioctl(fd, KvmIoctls.KVM_SET_CPUID2, s);
        }
    }

    /** KVM_GET_CPUID2: the CPUID table last set. */
    public List<CpuidEntry> getCpuid2() {
        return Kvm.readCpuid(fd, KvmIoctls.KVM_GET_CPUID2);
    }

    /** KVM_GET_LAPIC (needs an in-kernel LAPIC). */
    public LapicState getLapic() {
        return getStruct(KvmIoctls.KVM_GET_LAPIC, KvmStructs.KVM_LAPIC_STATE, s -> new LapicState(s.toArray(JAVA_BYTE)));
    }

    public void setLapic(LapicState lapic) {
        setStruct(KvmIoctls.KVM_SET_LAPIC, KvmStructs.KVM_LAPIC_STATE,
                s -> MemorySegment.copy(lapic.toBytes(), 0, s, JAVA_BYTE, 0, LapicState.SIZE));
    }

    public MpState getMpState() {
        return getStruct(KvmIoctls.KVM_GET_MP_STATE, KvmStructs.KVM_MP_STATE, s -> MpState.of(s.get(JAVA_INT, 0)));
    }

    public void setMpState(MpState mpState) {
        setStruct(KvmIoctls.KVM_SET_MP_STATE, KvmStructs.KVM_MP_STATE, s -> s.set(JAVA_INT, 0, mpState.value()));
    }

    /** KVM_GET_REGS as the raw struct kvm_regs, for snapshots. */
    public byte[] getRegsBytes() {
        return getBytes(KvmIoctls.KVM_GET_REGS, KvmStructs.KVM_REGS.byteSize());
    }

    public void setRegsBytes(byte[] regs) {
        setBytes(KvmIoctls.KVM_SET_REGS, KvmStructs.KVM_REGS.byteSize(), regs);
    }

    /** KVM_GET_SREGS as the raw struct kvm_sregs (with the pending-interrupt bitmap), for snapshots. */
    public byte[] getSregsBytes() {
        return getBytes(KvmIoctls.KVM_GET_SREGS, KvmStructs.KVM_SREGS.byteSize());
    }

    public void setSregsBytes(byte[] sregs) {
        setBytes(KvmIoctls.KVM_SET_SREGS, KvmStructs.KVM_SREGS.byteSize(), sregs);
    }

    // ---- opaque state blocks for snapshots: saved and restored as they are, never interpreted

    /** An ioctl that fills {@code size} bytes (at least the layout's), returned as they are. */
    private byte[] getBytes(Ioctl request, long size) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(size, 8);
            Libc.ioctl(fd, request, s);
            return s.toArray(JAVA_BYTE);
        }
    }

    /** An ioctl that takes {@code bytes}, which must be exactly {@code size} long. */
    private void setBytes(Ioctl request, long size, byte[] bytes) {
        if (bytes.length != size) {
            throw new IllegalArgumentException(request.name() + " takes " + size + " bytes, not " + bytes.length);
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(size, 8);
            MemorySegment.copy(bytes, 0, s, JAVA_BYTE, 0, bytes.length);
            Libc.ioctl(fd, request, s);
        }
    }

    /**
     * The XSAVE area: KVM_GET_XSAVE2 of {@code size} bytes when {@code size} (KVM_CAP_XSAVE2 on the VM)
     * is larger than the legacy 4096 (AMX state does not fit), else KVM_GET_XSAVE.
     */
    public byte[] getXsave(int size) {
        return size > XSAVE_SIZE ? getBytes(KvmIoctls.KVM_GET_XSAVE2, size) : getBytes(KvmIoctls.KVM_GET_XSAVE, XSAVE_SIZE);
    }

    /** KVM_SET_XSAVE: takes the 4096 bytes or more that {@link #getXsave} gave. */
    public void setXsave(byte[] xsave) {
        if (xsave.length < XSAVE_SIZE) {
            throw new IllegalArgumentException("KVM_SET_XSAVE takes at least " + XSAVE_SIZE + " bytes, not " + xsave.length);
        }
        setBytes(KvmIoctls.KVM_SET_XSAVE, xsave.length, xsave);
    }

    public byte[] getXcrs() {
        return getBytes(KvmIoctls.KVM_GET_XCRS, KvmStructs.KVM_XCRS.byteSize());
    }

    public void setXcrs(byte[] xcrs) {
        setBytes(KvmIoctls.KVM_SET_XCRS, KvmStructs.KVM_XCRS.byteSize(), xcrs);
    }

    /** KVM_GET_VCPU_EVENTS: pending/injected exception, interrupt, NMI, SIPI vector, SMM. */
    public byte[] getVcpuEvents() {
        return getBytes(KvmIoctls.KVM_GET_VCPU_EVENTS, KvmStructs.KVM_VCPU_EVENTS.byteSize());
    }

    public void setVcpuEvents(byte[] events) {
        setBytes(KvmIoctls.KVM_SET_VCPU_EVENTS, KvmStructs.KVM_VCPU_EVENTS.byteSize(), events);
    }

    public byte[] getDebugRegs() {
        return getBytes(KvmIoctls.KVM_GET_DEBUGREGS, KvmStructs.KVM_DEBUGREGS.byteSize());
    }

    public void setDebugRegs(byte[] debugRegs) {
        setBytes(KvmIoctls.KVM_SET_DEBUGREGS, KvmStructs.KVM_DEBUGREGS.byteSize(), debugRegs);
    }

    /**
     * KVM_INTERRUPT: queues external interrupt {@code vector}: without an in-kernel irqchip, or with a
     * split one (delivered as ExtINT through LINT0 when the guest can take it).
     */
    public void interrupt(int vector) {
        setStruct(KvmIoctls.KVM_INTERRUPT, KvmStructs.KVM_INTERRUPT, s -> s.set(JAVA_INT, 0, vector));
    }

    /** KVM_NMI: queues a non-maskable interrupt. */
    public void nmi() {
        Libc.ioctl(fd, KvmIoctls.KVM_NMI, 0);
    }

    /** KVM_ENABLE_CAP on this vCPU. */
    public void enableCap(Capability cap, long... args) {
        Vm.enableCap(fd, cap, args);
    }

    // ---- closing

    /**
     * Closes the vCPU, first kicking it out of run() on another thread and waiting up to 2 seconds
     * for run() to return.
     *
     * @throws IllegalStateException if a thread is still inside run() when the time is up (it does not
     *     take the kick, for instance because it blocks the kick signal). The vCPU then stays open,
     *     its descriptor and run page with it, since that thread may still use them; run() refuses to
     *     start again, and a later close() tries again.
     */
    @Override
    public void close() {
        close(CLOSE_TIMEOUT);
    }

    void close(Duration timeout) {
        closeRequested = true;
        long deadline = System.nanoTime() + timeout.toNanos();
        for (int spins = 0; ; spins++) {
            int s = state.get();
            if (s == CLOSED) {
                return;
            }
            if (s == IDLE) {
                if (state.compareAndSet(IDLE, CLOSED)) {
                    break;
                }
                continue;
            }
            if (s == RUNNING && spins % 256 == 0) {
                kick();
            }
            if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException("vcpu " + id + ": its thread did not leave KVM_RUN within "
                        + timeout.toMillis() + " ms of the kick; the vCPU stays open (its descriptor and run page) "
                        + "until a close() after that thread has left");
            }
            if (spins < 64) {
                Thread.onSpinWait();
            } else {
                LockSupport.parkNanos(100_000);
            }
        }
        // If the arena stays busy this throws, and the run page stays mapped: a leak, never a SIGSEGV.
        closeArena();
        try {
            mapping.close();
        } finally {
            fd.close();
            vm.forget(this);
        }
    }

    private void closeArena() {
        // A shared arena refuses to close while another thread is inside an access to its memory,
        // e.g. a stale VcpuExit.Io being read: that lasts nanoseconds, so retry.
        for (int attempt = 0; ; attempt++) {
            try {
                arena.close();
                return;
            } catch (IllegalStateException busy) {
                if (attempt > 1000) {
                    throw busy;
                }
                LockSupport.parkNanos(10_000);
            }
        }
    }

    @Override
    public String toString() {
        return "Vcpu[" + id + (state.get() == CLOSED ? ", closed]" : "]");
    }
}
