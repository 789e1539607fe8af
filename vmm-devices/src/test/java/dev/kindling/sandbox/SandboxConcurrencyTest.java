package dev.kindling.sandbox;

import static dev.kindling.sandbox.TestSandboxes.progress;
import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Eight sandboxes in one JVM at once: each runs its own commands, and the ones that die affect no
 * other. They boot {@link #BOOTING} at a time: where guest kernel code is emulated, eight kernels
 * booting at once on two cores each take many times the CPU of one and stall past any timeout.
 */
@Timeout(3600)
class SandboxConcurrencyTest {
    private static final int SANDBOXES = 8;
    private static final int BOOTING = 2;
    /**
     * Eight guests busy at once on two cores, their kernels emulated, can leave a PING unanswered for
     * over 30 s (a CI run of 2026-12-02): a generous heartbeat, so only a real hang counts.
     */
    private static final Duration UNRESPONSIVE = Duration.ofSeconds(120);
    /** A put and a cat take seconds; past this a run is stuck, not slow. */
    private static final Duration RUN_LIMIT = Duration.ofMinutes(4);

    @Test
    void eightSandboxesRunAtOnceAndOneDyingAffectsNoOther() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(SANDBOXES);
        List<Sandbox> boxes = new ArrayList<>();
        try {
            long t0 = System.nanoTime();
            Semaphore booting = new Semaphore(BOOTING);
            List<Future<Sandbox>> boots = new ArrayList<>();
            for (int i = 0; i < SANDBOXES; i++) {
                Sandbox.Builder b = TestSandboxes.builder("c" + i).memoryMib(64).unresponsiveAfter(UNRESPONSIVE);
                boots.add(pool.submit(() -> {
                    booting.acquire();
                    try {
                        return b.build();
                    } finally {
                        booting.release();
                    }
                }));
            }
            ExecutionException failed = null;
            for (Future<Sandbox> f : boots) {
                try {
                    boxes.add(f.get()); // every boot is awaited, so a failure leaves none of them running
                } catch (ExecutionException e) {
                    failed = failed == null ? e : failed;
                }
            }
            if (failed != null) {
                throw failed;
            }
            progress(String.format("%d sandboxes up, %d booting at a time, in %.0f s", SANDBOXES, BOOTING,
                    (System.nanoTime() - t0) / 1e9));

            List<Future<String>> runs = new ArrayList<>();
            for (int i = 0; i < SANDBOXES; i++) {
                Sandbox s = boxes.get(i);
                String n = Integer.toString(i);
                runs.add(pool.submit(() -> {
                    s.put("/who", n.getBytes(UTF_8));
                    return s.exec("cat", "/who").stdout();
                }));
            }
            for (int i = 0; i < SANDBOXES; i++) {
                assertThat(await(runs.get(i), boxes, i)).isEqualTo(Integer.toString(i));
            }

            // one closed, one stopped from the host, one whose guest reboots
            boxes.get(0).close();
            boxes.get(1).vm().stop();
            assertThatThrownBy(() -> boxes.get(2).exec("reboot", "-f")).isInstanceOf(SandboxException.class)
                    .hasMessageContaining("guest exited");
            assertThatThrownBy(() -> boxes.get(0).exec("true")).hasMessageContaining("sandbox closed");
            assertThatThrownBy(() -> boxes.get(1).exec("true")).hasMessageContaining("guest exited");

            runs.clear();
            for (int i = 3; i < SANDBOXES; i++) {
                Sandbox s = boxes.get(i);
                runs.add(pool.submit(() -> s.exec("cat", "/who").stdout()));
            }
            for (int i = 3; i < SANDBOXES; i++) {
                assertThat(await(runs.get(i - 3), boxes, i)).isEqualTo(Integer.toString(i));
                assertThat(boxes.get(i).isAlive()).isTrue();
            }
        } finally {
            for (Sandbox s : boxes) {
                s.close();
            }
            pool.shutdownNow();
        }
    }

    /** The run's result; one that does not come in time fails with what each sandbox's threads and console show. */
    private static String await(Future<String> run, List<Sandbox> boxes, int index) throws Exception {
        try {
            return run.get(RUN_LIMIT.toSeconds(), TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            StringBuilder b = new StringBuilder("sandbox c" + index + "'s command did not end within " + RUN_LIMIT + "\n");
            Thread.getAllStackTraces().forEach((t, stack) -> {
                if (t.getName().startsWith("sandbox-c") || t.getName().contains("vsock") || t.getName().startsWith("pool-")) {
                    b.append(t.getName()).append(' ').append(t.getState()).append('\n');
                    for (StackTraceElement f : stack) {
                        b.append("    at ").append(f).append('\n');
                    }
                }
            });
            for (int i = 0; i < boxes.size(); i++) {
                Sandbox s = boxes.get(i);
                b.append("--- c").append(i).append(s.isAlive() ? " alive" : " not alive").append(", console:\n")
                        .append(Sandbox.tail(s.console())).append('\n');
            }
            throw new AssertionError(b.toString(), e);
        }
    }
}
