package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.kvm.testing.TestGuests;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code kindling bench startup}: its arguments, and the meter it measures each whole process with. */
class StartupBenchTest {
    @TempDir
    Path tmp;

    private static int kindling(ByteArrayOutputStream err, String... args) {
        return Kindling.run(List.of(args), new ByteArrayInputStream(new byte[0]), new PrintStream(new ByteArrayOutputStream()),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    @Test
    void badArgumentsAreUsageErrorsBeforeAnythingIsInstalledOrRun() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        assertThat(kindling(err, "bench", "startup", "--runs", "0")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --runs must be at least 1")
                .contains("kindling bench startup [--runs N]");
        err.reset();
        assertThat(kindling(err, "bench", "startup", "--runs", "many")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --runs takes a whole number, got 'many'");
        err.reset();
        assertThat(kindling(err, "bench", "startup", "--colour")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: unknown option --colour");
        err.reset();
        assertThat(kindling(err, "bench", "startup", "now")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: bench startup takes no arguments besides --runs");
    }

    private Path measure() {
        return TestGuests.elf("serialhello").resolveSibling("measure");
    }

    @Test
    void theMeterReportsEachProcessOwnPeakNotThisJvms() throws Exception {
        Path measure = measure();
        Path out = tmp.resolve("out");
        Path err = tmp.resolve("err");
        MeasuredRun.Result sh = MeasuredRun.run(measure, List.of("/bin/sh", "-c", "echo hello; exit 3"), out, err, Duration.ofSeconds(30));
        assertThat(sh.exitedWith(3)).as(sh.describe()).isTrue();
        assertThat(Files.readString(out)).isEqualTo("hello\n");
        assertThat(sh.wallNanos()).isPositive();
        // far below this JVM's own resident set, which a child forked or spawned from it would report
        assertThat(sh.maxRssKib()).isBetween(1L, 16L * 1024);

        // dd's 64 MiB block buffer, filled from /dev/zero, is resident while it runs
        MeasuredRun.Result dd = MeasuredRun.run(measure, List.of("/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"),
                out, err, Duration.ofSeconds(30));
        assertThat(dd.exitedWith(0)).as(dd.describe()).isTrue();
        assertThat(dd.maxRssKib()).isGreaterThanOrEqualTo(64L * 1024);
    }

    @Test
    void aProgramStillRunningAtTheLimitIsKilled() throws Exception {
        MeasuredRun.Result r = MeasuredRun.run(measure(), List.of("/bin/sleep", "60"), tmp.resolve("out"), tmp.resolve("err"),
                Duration.ofSeconds(1));
        assertThat(r.signal()).isEqualTo(9);
        assertThat(r.exitedWith(0)).isFalse();
        assertThat(r.wallNanos()).isBetween(1_000_000_000L, 30_000_000_000L);
    }

    @Test
    void anIncompleteMeterResultIsAnError() {
        assertThatThrownBy(() -> MeasuredRun.parse(List.of("wall_ns 5", "maxrss_kib 7")))
                .isInstanceOf(IOException.class).hasMessageContaining("incomplete");
        assertThatThrownBy(() -> MeasuredRun.parse(List.of("wall_ns x", "maxrss_kib 7", "exit 0")))
                .isInstanceOf(IOException.class);
    }
}
