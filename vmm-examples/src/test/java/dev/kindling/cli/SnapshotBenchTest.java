package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import dev.kindling.kvm.testing.TestGuests;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** {@code kindling bench snapshot}: its arguments, its table, and one short real run with the freestanding guest. */
class SnapshotBenchTest {
    private static int kindling(ByteArrayOutputStream out, ByteArrayOutputStream err, String... args) {
        return Kindling.run(List.of(args), new ByteArrayInputStream(new byte[0]), new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    @Test
    void badArgumentsAreUsageErrorsBeforeAnythingIsRun() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        assertThat(kindling(new ByteArrayOutputStream(), err, "bench", "snapshot", "--runs", "0")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --runs must be between 1 and 20")
                .contains("kindling bench snapshot [--runs N] [--no-sandbox]");
        err.reset();
        assertThat(kindling(new ByteArrayOutputStream(), err, "bench", "snapshot", "now")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: bench snapshot takes no arguments besides its options");
        assertThat(SnapshotBench.options(List.of())).isEqualTo(new SnapshotBench.Options(3, true));
        assertThat(SnapshotBench.options(List.of("--runs=2", "--no-sandbox"))).isEqualTo(new SnapshotBench.Options(2, false));
    }

    @Test
    void tableHasMediansRatiosToQemuAndASummaryLineLast() {
        SnapshotBench.Results r = new SnapshotBench.Results(
                List.of(new SnapshotBench.Guest(1, 10, 2, 4, 0.5), new SnapshotBench.Guest(3, 30, 6, 8, 1.5),
                        new SnapshotBench.Guest(2, 20, 4, 6, 1)),
                List.of(new SnapshotBench.Boxed(5, 50, 7, 9, 3)), List.of(new SnapshotBench.Qemu(40, 100)), "QEMU -M microvm", List.of());
        List<String> t = SnapshotBench.table(r, new SnapshotBench.Options(3, true));
        assertThat(t.get(0).split("\\s+")).containsExactly("metric", "(median)", "kindling", "qemu", "ratio");
        assertThat(t.get(1).split("\\s+")).containsExactly("guest-snapshot-memory-ms", "2.00", "-", "-");
        assertThat(t.get(2).split("\\s+")).containsExactly("guest-snapshot-disk-ms", "20.00", "40.00", "0.50");
        assertThat(t.get(3).split("\\s+")).containsExactly("guest-restore-to-line-ms", "6.00", "100.00", "0.06");
        assertThat(t.get(4).split("\\s+")).containsExactly("guest-clone-to-line-ms", "4.00", "100.00", "0.04");
        assertThat(t.get(5).split("\\s+")).containsExactly("guest-clone-private-mib", "1.00", "-", "-");
        assertThat(t.get(9).split("\\s+")).containsExactly("sandbox-clone-to-first-exec-ms", "9.00", "-", "-");
        assertThat(t.get(10).split("\\s+")).containsExactly("sandbox-clone-private-mib", "3.00", "-", "-");
        assertThat(t.getLast()).isEqualTo(
                "snapshot: restore-ratio 0.06 clone-ratio 0.04 clone-line-ms 4.00 clone-exec-ms 9.00 clone-private-mib 3.00");

        // a run whose sandbox clone failed keeps its snapshot figures; the clone rows are dashes and the note says why
        List<String> f = SnapshotBench.table(new SnapshotBench.Results(r.guest(), List.of(SnapshotBench.cloneFailed(5, 50)), List.of(),
                "QEMU left out: qemu-system-x86_64 is not installed", List.of("the agent closed the connection")),
                new SnapshotBench.Options(3, true));
        assertThat(f.get(3).split("\\s+")).containsExactly("guest-restore-to-line-ms", "6.00", "-", "-");
        assertThat(f.get(6).split("\\s+")).containsExactly("sandbox-snapshot-memory-ms", "5.00", "-", "-");
        assertThat(f.get(9).split("\\s+")).containsExactly("sandbox-clone-to-first-exec-ms", "-", "-", "-");
        assertThat(f.get(11)).contains("QEMU left out: qemu-system-x86_64 is not installed")
                .contains("clone failed in 1 run(s): the agent closed the connection");
        assertThat(f.getLast()).isEqualTo("snapshot: restore-ratio - clone-ratio - clone-line-ms 4.00 clone-exec-ms - clone-private-mib -");
    }

    @Test
    void aShortRunWithoutTheSandboxMeasuresTheGuestAndQemu() throws Exception {
        // as the command does it, with the test guest; QEMU where it is installed
        Path qemu = HostTool.QEMU.find(System.getenv().getOrDefault("PATH", "")).orElse(null);
        SnapshotBench.Options o = new SnapshotBench.Options(1, false);
        SnapshotBench.Results r = SnapshotBench.measure(o, TestGuests.elf("snapserial"), qemu, "QEMU -M microvm", null,
                new PrintStream(new ByteArrayOutputStream()));
        assertThat(r.guest()).hasSize(1);
        SnapshotBench.Guest g = r.guest().getFirst();
        assertThat(g.snapMemMs()).isPositive();
        assertThat(g.cloneLineMs()).isPositive();
        assertThat(g.restoreLineMs()).isPositive();
        assertThat(g.clonePrivateMib()).as("a clone's own memory, MiB").isPositive().isLessThan(SnapshotBench.GUEST_MIB);
        assertThat(r.qemu()).hasSize(qemu == null ? 0 : 1);
        List<String> t = SnapshotBench.table(r, o);
        assertThat(t).noneMatch(l -> l.startsWith("sandbox-"));
        assertThat(t.get(3)).matches("guest-restore-to-line-ms +\\d+\\.\\d\\d +(\\d+\\.\\d\\d|-) +(\\d+\\.\\d\\d|-)");
        assertThat(t.getLast()).matches("snapshot: restore-ratio \\S+ clone-ratio \\S+ clone-line-ms \\d+\\.\\d\\d clone-exec-ms - "
                + "clone-private-mib \\d+\\.\\d\\d");
    }
}
