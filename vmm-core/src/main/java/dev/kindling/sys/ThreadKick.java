package dev.kindling.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Kicks a thread out of a blocking system call (KVM_RUN) with a real-time signal whose handler does
 * nothing: the call returns EINTR. The handler is a libc function that ignores its argument
 * ({@code getpid}), so no native code of our own and no Java upcall runs in signal context.
 *
 * <p>The signal is {@link #SIGNAL}, SIGRTMIN+6. The handler is installed once per process, and only if
 * the signal has none yet (default or ignored): a handler the host program put there is never
 * replaced; {@link #install()} fails naming the signal instead.
 *
 * <p>A thread that wants to be kickable calls {@link #prepareCurrentThread()} once; it returns the
 * handle other threads pass to {@link #kick(long)}. A kick that arrives before the thread blocks is
 * lost, so callers pair it with a flag the blocking call checks first (KVM's {@code immediate_exit}).
 */
public final class ThreadKick {
    /** SIGRTMIN + 6: clear of glibc's and HotSpot's signals; Firecracker and Cloud Hypervisor use this range too. */
    public static final int SIGNAL = Libc.sigrtmin() + 6;

    private static final long SIG_DFL = 0, SIG_IGN = 1;
    private static final MemorySegment HANDLER = Libc.find("getpid");

    private static final Object INSTALL_LOCK = new Object();
    private static volatile boolean installed;

    private ThreadKick() {}

    /**
     * Installs the kick handler, once per process.
     *
     * @throws SignalInUseException if the host program has its own handler on {@link #SIGNAL}
     */
    public static void install() {
        if (installed) {
            return;
        }
        synchronized (INSTALL_LOCK) {
            if (!installed) {
                installOn(SIGNAL);
                installed = true;
            }
        }
    }

    /** Installs the handler on {@code signal} after checking, with the action it has now, that it is free. */
    static void installOn(int signal) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment old = arena.allocate(Libc.SIGACTION_LAYOUT);
            Libc.sigaction(signal, MemorySegment.NULL, old);
            long current = old.get(ADDRESS, 0).address();
            if (!isFree(current)) {
                throw new SignalInUseException(describe(signal) + " already has a handler of the host program (at 0x"
                        + Long.toHexString(current) + "); Kindling kicks vCPU threads with this signal and does not "
                        + "replace another handler");
            }
            MemorySegment act = arena.allocate(Libc.SIGACTION_LAYOUT);
            act.set(ADDRESS, 0, HANDLER);
            // sa_mask empty, sa_flags 0: no SA_RESTART, so the blocked call returns EINTR.
            Libc.sigaction(signal, act, MemorySegment.NULL);
        }
    }

    /** A signal whose handler is {@code handler} may be taken: nobody handles it, or we already do. */
    static boolean isFree(long handler) {
        return handler == SIG_DFL || handler == SIG_IGN || handler == HANDLER.address();
    }

    /** {@code "SIGRTMIN+6 (signal 40)"}. */
    static String describe(int signal) {
        int rt = signal - Libc.sigrtmin();
        return rt < 0 ? "signal " + signal : "SIGRTMIN+" + rt + " (signal " + signal + ")";
    }

    /** Installs the handler (once per process), unblocks the signal here and returns this thread's handle. */
    public static long prepareCurrentThread() {
        install();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment set = arena.allocate(Libc.SIGSET_SIZE);
            Libc.sigset(set, SIGNAL);
            Libc.pthreadSigmask(Libc.SIG_UNBLOCK, set, MemorySegment.NULL);
        }
        return Libc.pthreadSelf();
    }

    /** Sends the kick signal; false if the thread has already ended. */
    public static boolean kick(long threadHandle) {
        return Libc.pthreadKill(threadHandle, SIGNAL) == 0;
    }
}
