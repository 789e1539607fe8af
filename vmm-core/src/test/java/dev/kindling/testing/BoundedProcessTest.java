package dev.kindling.testing;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(120)
class BoundedProcessTest {
    /** Long enough for sh to start its sleep on a loaded machine. */
    private static final Duration LIMIT = Duration.ofSeconds(5);
    /** Far more than the kill takes, far less than the child would run. */
    private static final Duration CUT_OFF_WITHIN = Duration.ofSeconds(60);
    /** How long the hanging grandchild would sleep; unusual, so that cleanup finds only it. */
    private static final String SLEEPER_SECONDS = "3607";

    @Test
    void aProcessThatEndsGivesItsOutputAndExitCode() throws Exception {
        BoundedProcess.Result r = BoundedProcess.run(Duration.ofSeconds(60), "sh", "-c", "echo out; echo err >&2; exit 3");
        assertThat(r.timedOut()).isFalse();
        assertThat(r.exitCode()).isEqualTo(3);
        assertThat(r.succeeded()).isFalse();
        assertThat(r.output()).isEqualTo("out\nerr\n");
        assertThat(r.describe()).isEqualTo("sh -c echo out; echo err >&2; exit 3 exited with 3");
    }

    @Test
    void aHangingChildIsKilledAtTheLimit() throws Exception {
        long t0 = System.nanoTime();
        // prints, then waits for a sleep that would outlast the test; the sleep keeps the output open
        CompletableFuture<BoundedProcess.Result> run = CompletableFuture.supplyAsync(() -> {
            try {
                return BoundedProcess.run(LIMIT, "sh", "-c", "sleep " + SLEEPER_SECONDS + " & echo $!; wait");
            } catch (IOException | InterruptedException e) {
                throw new CompletionException(e);
            }
        });
        BoundedProcess.Result r;
        try {
            r = run.get(CUT_OFF_WITHIN.toSeconds(), TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            killSleepers(); // so that a broken limit fails this test instead of hanging the build
            throw new AssertionError("the child was not cut off within " + CUT_OFF_WITHIN, e);
        }
        Duration took = Duration.ofNanos(System.nanoTime() - t0);

        assertThat(r.timedOut()).isTrue();
        assertThat(r.succeeded()).isFalse();
        assertThat(r.describe()).endsWith(" did not finish in time and was killed");
        assertThat(took).isGreaterThanOrEqualTo(LIMIT).isLessThan(CUT_OFF_WITHIN);
        assertThat(ProcessHandle.of(r.pid()).filter(ProcessHandle::isAlive)).as("the child").isEmpty();
        assertThat(r.output()).as("the sleep's pid, printed before the limit").matches("[0-9]+\n");
        long sleeper = Long.parseLong(r.output().strip());
        boolean gone = gone(sleeper);
        if (!gone) {
            ProcessHandle.of(sleeper).ifPresent(ProcessHandle::destroyForcibly);
        }
        assertThat(gone).as("its child, pid %d", sleeper).isTrue();
    }

    @Test
    void aChildReadingStandardInputSeesEndOfFile() throws Exception {
        BoundedProcess.Result r = BoundedProcess.run(Duration.ofSeconds(60), "sh", "-c", "cat; echo done");
        assertThat(r.succeeded()).isTrue();
        assertThat(r.output()).isEqualTo("done\n");
    }

    @Test
    void theCommandRunsInTheDirectoryGiven() throws Exception {
        BoundedProcess.Result r = BoundedProcess.run(Duration.ofSeconds(60), Path.of("/"), List.of("pwd"));
        assertThat(r.output()).isEqualTo("/\n");
    }

    private static void killSleepers() {
        ProcessHandle.current().descendants()
                .filter(h -> h.info().arguments().map(a -> String.join(" ", a)).orElse("").contains(SLEEPER_SECONDS))
                .forEach(ProcessHandle::destroyForcibly);
    }

    /** True once {@code pid} has ended (an orphan is reaped by init, not by us: wait for it, bounded). */
    private static boolean gone(long pid) throws Exception {
        Optional<ProcessHandle> h = ProcessHandle.of(pid);
        if (h.isEmpty()) {
            return true;
        }
        try {
            h.get().onExit().get(CUT_OFF_WITHIN.toSeconds(), TimeUnit.SECONDS);
            return true;
        } catch (TimeoutException e) {
            return false;
        }
    }
}
