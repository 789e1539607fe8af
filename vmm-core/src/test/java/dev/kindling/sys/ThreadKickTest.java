package dev.kindling.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/**
 * The kick handler never replaces one the host program installed. The checks use other real-time
 * signals than the kick's and put back what they found, so the JVM's signal table stays as it was.
 */
class ThreadKickTest {
    private static final MemorySegment GETPID = Libc.find("getpid");
    /** Any function serves as the host program's handler: it is never called. */
    private static final MemorySegment HOST_HANDLER = Libc.find("getppid");

    @Test
    void onlyNoHandlerOrOursCountsAsFree() {
        assertThat(ThreadKick.isFree(0)).as("SIG_DFL").isTrue();
        assertThat(ThreadKick.isFree(1)).as("SIG_IGN").isTrue();
        assertThat(ThreadKick.isFree(GETPID.address())).as("our own handler").isTrue();
        assertThat(ThreadKick.isFree(HOST_HANDLER.address())).as("the host program's").isFalse();
    }

    @Test
    void kickSignalCarriesOurHandlerOnceInstalled() {
        ThreadKick.install();
        assertThat(handlerOf(ThreadKick.SIGNAL)).isEqualTo(GETPID.address());
        ThreadKick.install(); // idempotent
        assertThat(ThreadKick.describe(ThreadKick.SIGNAL)).isEqualTo("SIGRTMIN+6 (signal " + ThreadKick.SIGNAL + ")");
    }

    @Test
    void signalWithTheHostProgramsHandlerIsRefusedAndLeftAsItWas() {
        int signal = Libc.sigrtmin() + 7;
        withAction(signal, HOST_HANDLER, () -> {
            assertThatThrownBy(() -> ThreadKick.installOn(signal))
                    .isInstanceOf(SignalInUseException.class)
                    .hasMessageStartingWith("SIGRTMIN+7 (signal " + signal + ") already has a handler of the host program");
            assertThat(handlerOf(signal)).isEqualTo(HOST_HANDLER.address());
        });
    }

    @Test
    void freeSignalGetsTheHandler() {
        int signal = Libc.sigrtmin() + 8;
        withAction(signal, MemorySegment.NULL, () -> {
            ThreadKick.installOn(signal);
            assertThat(handlerOf(signal)).isEqualTo(GETPID.address());
            ThreadKick.installOn(signal); // ours already: no complaint
        });
    }

    private static long handlerOf(int signal) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment old = arena.allocate(Libc.SIGACTION_LAYOUT);
            Libc.sigaction(signal, MemorySegment.NULL, old);
            return old.get(ADDRESS, 0).address();
        }
    }

    /** Runs {@code check} with {@code handler} on {@code signal}, then restores the action it had. */
    private static void withAction(int signal, MemorySegment handler, Runnable check) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment saved = arena.allocate(Libc.SIGACTION_LAYOUT);
            MemorySegment act = arena.allocate(Libc.SIGACTION_LAYOUT);
            act.set(ADDRESS, 0, handler);
            Libc.sigaction(signal, act, saved);
            try {
                check.run();
            } finally {
                Libc.sigaction(signal, saved, MemorySegment.NULL);
            }
        }
    }
}
