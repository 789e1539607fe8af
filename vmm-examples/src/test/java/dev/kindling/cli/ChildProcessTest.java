package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Helper programs run with a time limit. */
@Timeout(120)
class ChildProcessTest {
    @Test
    void aProgramThatEndsGivesItsStatusAndOutput() throws Exception {
        ChildProcess.Result r = ChildProcess.run(Duration.ofSeconds(60), List.of("sh", "-c", "cat; echo out; echo err >&2; exit 3"));
        assertThat(r.exitStatus()).isEqualTo(3);
        assertThat(r.lines()).containsExactly("out", "err");
    }

    @Test
    void standardErrorCanGoToItsOwnConsumerAsItComes() throws Exception {
        List<String> errors = new CopyOnWriteArrayList<>();
        ChildProcess.Result r = ChildProcess.run(Duration.ofSeconds(60),
                new ProcessBuilder("sh", "-c", "echo one >&2; echo dir; echo two >&2"), errors::add);
        assertThat(r.exitStatus()).isZero();
        assertThat(r.output()).isEqualTo("dir\n");
        assertThat(errors).containsExactly("one", "two");
    }

    @Test
    void aHangingProgramAndItsChildrenAreKilledAtTheLimitWithOneLine() throws Exception {
        List<String> errors = new CopyOnWriteArrayList<>();
        long t0 = System.nanoTime();
        // the sleep keeps standard error open after its parent is gone
        assertThatThrownBy(() -> ChildProcess.run(Duration.ofSeconds(2),
                new ProcessBuilder("sh", "-c", "sleep 3609 & echo $! >&2; wait"), errors::add))
                .isInstanceOf(ChildProcess.Failure.class)
                .hasMessage("sh -c sleep 3609 & echo $! >&2; wait did not finish within 2 s and was killed");
        assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(60));
        assertThat(errors).hasSize(1);
        ProcessHandle sleeper = ProcessHandle.of(Long.parseLong(errors.getFirst())).orElse(null);
        if (sleeper != null) {
            assertThat(sleeper.onExit()).succeedsWithin(Duration.ofSeconds(30));
        }
    }
}
