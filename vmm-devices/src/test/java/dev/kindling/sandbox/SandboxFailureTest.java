package dev.kindling.sandbox;

import static dev.kindling.sandbox.TestSandboxes.progress;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A guest that panics and a guest that stops answering: pending and later calls fail within seconds
 * with the reason and the console's tail. The two sandboxes boot at once.
 */
@Timeout(1800)
class SandboxFailureTest {
    /** The guest kernel has no magic SysRq: it panics on out-of-memory instead, which it is told to do first. */
    private static final String OOM_PANIC = "echo 1 > /proc/sys/vm/panic_on_oom"
            + " && for i in 1 2 3 4; do dd if=/dev/zero of=/dev/null bs=32M count=1 & done; wait";
    /** Reported within seconds: the time from the event to the pending call's exception. */
    private static final Duration PROMPTLY = Duration.ofSeconds(10);

    private static ExecutorService pool;
    private static Sandbox panicking;
    private static Sandbox hanging;

    @BeforeAll
    static void boot() throws Exception {
        pool = Executors.newCachedThreadPool();
        long t0 = System.nanoTime();
        Future<Sandbox> a = pool.submit(() -> TestSandboxes.builder("panic").memoryMib(64).build());
        Future<Sandbox> b = pool.submit(() -> TestSandboxes.builder("hang").memoryMib(64).build());
        try {
            panicking = a.get();
            hanging = b.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw e;
        }
        progress(String.format("two sandboxes booted in %.0f s", (System.nanoTime() - t0) / 1e9));
    }

    @AfterAll
    static void close() {
        for (Sandbox s : new Sandbox[] {panicking, hanging}) {
            if (s != null) {
                s.close();
            }
        }
        if (pool != null) {
            pool.shutdownNow();
        }
    }

    @Test
    void aGuestPanicFailsPendingAndLaterCallsWithTheConsoleTail() throws Exception {
        Sandbox s = panicking;
        assertThat(s.exec("echo", "up").stdout()).isEqualTo("up\n");
        ExecHandle pending = s.start("sleep", "1000");
        CompletableFuture<Long> exited = s.vm().onExit().thenApply(r -> System.nanoTime());
        long t0 = System.nanoTime();
        Future<ExecResult> trigger = pool.submit(() -> s.exec("sh", "-c", OOM_PANIC));

        assertThatThrownBy(() -> pending.waitFor(Duration.ofMinutes(20))).isInstanceOfSatisfying(SandboxException.class, e -> {
            assertThat(e.getMessage()).startsWith("guest exited: guest reset");
            assertThat(e.consoleTail()).contains("Kernel panic");
        });
        long failed = System.nanoTime();
        long exit = exited.get(1, TimeUnit.MINUTES);
        progress(String.format("panic %.0f s after the trigger; pending call failed %.2f s after the exit",
                (exit - t0) / 1e9, (failed - exit) / 1e9));
        assertThat(Duration.ofNanos(failed - exit)).isLessThan(PROMPTLY);

        assertThatThrownBy(() -> trigger.get(PROMPTLY.toSeconds(), TimeUnit.SECONDS)).cause()
                .isInstanceOf(SandboxException.class).hasMessageContaining("guest exited");
        long t1 = System.nanoTime();
        assertThatThrownBy(() -> s.exec("true")).isInstanceOfSatisfying(SandboxException.class,
                e -> assertThat(e.consoleTail()).contains("Out of memory"));
        assertThatThrownBy(() -> s.get("/etc/fstab")).isInstanceOf(SandboxException.class).hasMessageContaining("guest exited");
        assertThat(Duration.ofNanos(System.nanoTime() - t1)).isLessThan(PROMPTLY);
        assertThat(s.isAlive()).isFalse();
        pending.close();
    }

    @Test
    void aGuestThatStopsAnsweringFailsPendingAndLaterCalls() throws Exception {
        Sandbox s = hanging;
        assertThat(s.exec("echo", "up").stdout()).isEqualTo("up\n");
        Future<ExecResult> pending = pool.submit(() -> s.exec("sleep", "100"));
        Thread.sleep(3000); // let it start
        long t0 = System.nanoTime();
        s.vm().pause();
        assertThatThrownBy(() -> pending.get(2, TimeUnit.MINUTES)).cause().isInstanceOfSatisfying(SandboxException.class, e -> {
            assertThat(e.getMessage()).startsWith("guest stopped answering for 5 s");
            assertThat(e.consoleTail()).contains("KINDLING-AGENT-READY");
        });
        Duration took = Duration.ofNanos(System.nanoTime() - t0);
        progress(String.format("pending exec failed %.1f s after the pause", took.toNanos() / 1e9));
        assertThat(took).isLessThan(Duration.ofSeconds(5).plus(PROMPTLY));
        long t1 = System.nanoTime();
        assertThatThrownBy(() -> s.exec("true")).isInstanceOf(SandboxException.class)
                .hasMessageContaining("guest stopped answering");
        assertThatThrownBy(() -> s.put("/x", new byte[1])).isInstanceOf(SandboxException.class);
        assertThat(Duration.ofNanos(System.nanoTime() - t1)).isLessThan(PROMPTLY);
        assertThat(s.isAlive()).isFalse();
        s.close();
        assertThatThrownBy(() -> s.exec("true")).isInstanceOf(SandboxException.class)
                .hasMessageContaining("guest stopped answering");
    }

    @Test
    void aGuestThatExitsDuringBootFailsAtOnceAndLeavesNothing() {
        // the last kindling.action wins: init powers the guest off instead of starting the agent
        Sandbox.Builder b = TestSandboxes.builder("exits").memoryMib(64).kernelArgs("kindling.action=poweroff");
        long t0 = System.nanoTime();
        assertThatThrownBy(b::build).isInstanceOfSatisfying(SandboxException.class, e -> {
            assertThat(e.getMessage()).contains("did not boot: guest exited");
            assertThat(e.consoleTail()).contains("KINDLING-INIT-OK");
        });
        Duration took = Duration.ofNanos(System.nanoTime() - t0);
        progress(String.format("a guest that exits during boot failed the build after %.0f s", took.toNanos() / 1e9));
        assertThat(took).isLessThan(TestSandboxes.BOOT);
        assertThat(Thread.getAllStackTraces().keySet()).noneMatch(t -> t.getName().startsWith("sandbox-exits-"));
    }
}
