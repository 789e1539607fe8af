package dev.kindling.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Kicks a thread out of a blocking system call (KVM_RUN) with a real-time signal whose handler does
 * nothing: the call returns EINTR. The handler is a libc function that ignores its argument
 * ({@code getpid}), so no native code of our own and no Java upcall runs in signal context.
 *
 * <p>A thread that wants to be kickable calls {@link #prepareCurrentThread()} once; it returns the
 * handle other threads pass to {@link #kick(long)}. A kick that arrives before the thread blocks is
 * lost, so callers pair it with a flag the blocking call checks first (KVM's {@code immediate_exit}).
 */
public final class ThreadKick {
    /** SIGRTMIN + 6: clear of glibc's and HotSpot's signals; Firecracker and Cloud Hypervisor use this range too. */
    public static final int SIGNAL = Libc.sigrtmin() + 6;

    private static final Object INSTALL_LOCK = new Object();
    private static volatile boolean installed;

    private ThreadKick() {}

    private static void install() {
        synchronized (INSTALL_LOCK) {
            if (installed) {
                return;
            }
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment act = arena.allocate(Libc.SIGACTION_LAYOUT);
                act.set(java.lang.foreign.ValueLayout.ADDRESS, 0, Libc.find("getpid"));
                // sa_mask empty, sa_flags 0: no SA_RESTART, so the blocked call returns EINTR.
                Libc.sigaction(SIGNAL, act, MemorySegment.NULL);
            }
            installed = true;
        }
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
