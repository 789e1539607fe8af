package dev.kindling.sandbox;

import static dev.kindling.sandbox.TestSandboxes.progress;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.testing.HostResources;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link #CYCLES} sandboxes booted, used and closed, {@link #AT_ONCE} at a time, leave no descriptor,
 * mapping or thread behind. Each cycle is a full Linux boot (about 25 s here, where guest kernel
 * code is emulated: 50 cycles two at a time take some 11 minutes of CI); the system property
 * {@code kindling.sandbox.leakCycles} sets another count for a quick run.
 */
@Timeout(4 * 3600)
class SandboxLeakTest {
    static final int CYCLES = 50;
    static final int AT_ONCE = 2;
    /** The JVM maps more over a long busy run on its own (code cache, a malloc arena per new thread). */
    private static final long MAPPING_SLACK = 24;

    private static void cycle(int i) {
        try (Sandbox s = TestSandboxes.builder("leak" + i).memoryMib(64).unresponsiveAfter(Duration.ofSeconds(30)).build()) {
            assertThat(s.exec("echo", "cycle " + i).stdout()).isEqualTo("cycle " + i + "\n");
        }
    }

    @Test
    void createAndCloseCyclesLeaveNothing() throws Exception {
        int cycles = Integer.getInteger("kindling.sandbox.leakCycles", CYCLES);
        ExecutorService pool = Executors.newFixedThreadPool(AT_ONCE);
        try {
            List<Future<?>> warm = new ArrayList<>();
            for (int i = 0; i < AT_ONCE; i++) {
                int n = i;
                warm.add(pool.submit(() -> cycle(n)));
            }
            for (Future<?> f : warm) {
                f.get();
            }
            HostResources before = HostResources.now();
            long t0 = System.nanoTime();
            for (int i = 0; i < cycles; i += AT_ONCE) {
                List<Future<?>> round = new ArrayList<>();
                for (int j = i; j < Math.min(cycles, i + AT_ONCE); j++) {
                    int n = j;
                    round.add(pool.submit(() -> cycle(n)));
                }
                for (Future<?> f : round) {
                    f.get();
                }
            }
            progress(String.format("%d create/use/close cycles, %d at a time, in %.0f s (%.0f s per cycle)", cycles, AT_ONCE,
                    (System.nanoTime() - t0) / 1e9, (System.nanoTime() - t0) / 1e9 / Math.max(1, cycles)));
            HostResources.now().assertNothingLeftSince(before, MAPPING_SLACK);
        } finally {
            pool.shutdownNow();
        }
    }
}
