package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** {@code kindling bench sandbox} and {@code kindling example}: their arguments, and the bench's table. */
class SandboxBenchTest {
    private static int kindling(ByteArrayOutputStream err, String... args) {
        return Kindling.run(List.of(args), new ByteArrayInputStream(new byte[0]), new PrintStream(new ByteArrayOutputStream()),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    @Test
    void badArgumentsAreUsageErrorsBeforeAnythingIsInstalledOrRun() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        assertThat(kindling(err, "bench", "sandbox", "--runs", "0")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --runs must be between 1 and 20")
                .contains("kindling bench sandbox [--runs N] [--execs N] [--cycles N] [--idle N]");
        err.reset();
        assertThat(kindling(err, "bench", "sandbox", "--execs", "0")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --execs must be between 1 and 10000");
        err.reset();
        assertThat(kindling(err, "bench", "sandbox", "--cycles", "21")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --cycles must be between 1 and 20");
        err.reset();
        assertThat(kindling(err, "bench", "sandbox", "--idle", "9")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --idle must be between 1 and 8");
        err.reset();
        assertThat(kindling(err, "bench", "sandbox", "--idle", "few")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --idle takes a whole number, got 'few'");
        err.reset();
        assertThat(kindling(err, "bench", "sandbox", "now")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: bench sandbox takes no arguments besides its options");
        assertThat(SandboxBench.options(List.of())).isEqualTo(new SandboxBench.Options(3, 20, 3, 2));
        assertThat(SandboxBench.options(List.of("--runs=1", "--execs", "5", "--cycles", "2", "--idle", "4")))
                .isEqualTo(new SandboxBench.Options(1, 5, 2, 4));
    }

    @Test
    void exampleNamesAndArgumentsAreCheckedFirst() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        assertThat(kindling(err, "example")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8))
                .startsWith("kindling: example needs a name: boot-banner, sandbox-command, python-sandbox, shared-memory")
                .contains("kindling example boot-banner|sandbox-command|python-sandbox [IMAGE]|shared-memory");
        err.reset();
        assertThat(kindling(err, "example", "two-vms")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: unknown example 'two-vms'");
        err.reset();
        assertThat(kindling(err, "example", "shared-memory", "extra")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: example shared-memory takes no arguments");
        err.reset();
        assertThat(kindling(err, "example", "boot-banner", "extra")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: example boot-banner takes no arguments");
        err.reset();
        assertThat(kindling(err, "example", "python-sandbox", "a.img", "b.img")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: example python-sandbox takes at most an IMAGE");
    }

    private static SandboxBench.Results results(Optional<SandboxBench.Memory> qemuMemory, List<Double> qemuReady, String note) {
        return new SandboxBench.Results(
                List.of(new SandboxBench.Boot(30, 31), new SandboxBench.Boot(10, 12), new SandboxBench.Boot(20, 22)),
                List.of(300.0, 100.0, 200.0), List.of(20.0, 40.0, 30.0), new SandboxBench.Memory(150, 100),
                qemuReady, qemuMemory, note);
    }

    @Test
    void tableHasMediansRatiosAndASummaryLineLast() {
        List<String> t = SandboxBench.table(results(Optional.of(new SandboxBench.Memory(200, 50)), List.of(40.0, 50.0, 60.0),
                "QEMU without vsock (no /dev/vhost-vsock here)"), new SandboxBench.Options(3, 20, 3, 2), "vmlinux");
        assertThat(t.get(0).split("\\s+")).containsExactly("metric", "(median)", "kindling", "qemu", "ratio");
        assertThat(t.get(1).split("\\s+")).containsExactly("boot-to-agent-s", "20.00", "50.00", "0.40");
        assertThat(t.get(2).split("\\s+")).containsExactly("boot-to-first-exec-s", "22.00", "50.00", "0.44");
        assertThat(t.get(3).split("\\s+")).containsExactly("exec-true-rtt-ms", "200.00", "-", "-");
        assertThat(t.get(4).split("\\s+")).as("60 s / the median cycle of 30 s").containsExactly("sandboxes-per-minute", "2.00", "-", "-");
        assertThat(t.get(5).split("\\s+")).containsExactly("idle-rss-mib", "150.00", "200.00", "0.75");
        assertThat(t.get(6).split("\\s+")).containsExactly("idle-pss-mib", "100.00", "50.00", "2.00");
        assertThat(t.get(7)).contains("extrapolated from 3 sequential").contains("no /dev/vhost-vsock").contains("2 idle sandboxes");
        assertThat(t.getLast()).isEqualTo("sandbox: boot-ratio 0.40 memory-ratio 0.75 exec-ms 200.00 per-minute 2.00");
    }

    @Test
    void withoutQemusReadyLineItsColumnsAreDashesAndTheNoteSaysWhy() {
        List<String> t = SandboxBench.table(results(Optional.empty(), List.of(), "QEMU left out: no KINDLING-AGENT-READY line"),
                new SandboxBench.Options(3, 20, 3, 2), "vmlinux");
        assertThat(t.get(1).split("\\s+")).containsExactly("boot-to-agent-s", "20.00", "-", "-");
        assertThat(t.get(5).split("\\s+")).containsExactly("idle-rss-mib", "150.00", "-", "-");
        assertThat(t.get(7)).contains("QEMU left out: no KINDLING-AGENT-READY line");
        assertThat(t.getLast()).isEqualTo("sandbox: boot-ratio - memory-ratio - exec-ms 200.00 per-minute 2.00");
    }

    @Test
    void pssIsReadFromSmapsRollup() throws Exception {
        assertThat(SandboxBench.pssKb(Path.of("/proc/self"))).isPositive();
    }
}
