package dev.kindling.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * {@code kindling bench startup}: the whole {@code ./kindling run} process (the launcher script and
 * the JVM it execs) against QEMU's microvm, on the same trivial guest ({@code serialhello}: it boots,
 * prints one line on the UART and resets), alternating. Each process is measured whole by
 * {@link MeasuredRun}: wall time from its start to its exit, and its peak RSS.
 */
final class StartupBench {
    static final String GUEST = "serialhello.elf";
    static final String GREETING = "Hello, serial!";
    static final int MEM_MIB = 64;
    static final int WARM_UPS = 2;
    static final Duration LIMIT = Duration.ofMinutes(2);
    /**
     * QEMU's microvm has no i8042, so an isa-debug-exit device takes the port the guest resets
     * through: its write of 0xfe ends QEMU with status (0xfe << 1) | 1, truncated to 8 bits.
     */
    static final int QEMU_GUEST_EXIT = ((0xfe << 1) | 1) & 0xff;

    private StartupBench() {}

    record Sample(double wallMs, double rssMib) {
        @Override
        public String toString() {
            return String.format("%.1f ms, %.1f MiB", wallMs, rssMib);
        }
    }

    /** One side of the comparison: the command, the exit status that means the guest ended by itself. */
    record Side(String name, List<String> command, int cleanExit) {}

    static int run(List<String> argv, PrintStream out, PrintStream err) throws IOException, InterruptedException {
        Args a = new Args(argv, Set.of("runs"), Set.of());
        int runs = a.intValue("runs", 10);
        if (runs < 1) {
            throw new UsageException("--runs must be at least 1");
        }
        if (!a.positional().isEmpty()) {
            throw new UsageException("bench startup takes no arguments besides --runs, got '" + a.positional().getFirst() + "'");
        }
        Path qemu = HostTool.QEMU.require(err);
        Workspace.buildGuests(err);
        Path guest = Workspace.guest(GUEST);
        Path measure = Workspace.guest("measure");
        Side kindling = new Side("kindling", List.of(Workspace.root().resolve("kindling").toString(), "run",
                "--kernel", guest.toString(), "--mem", Integer.toString(MEM_MIB)), 0);
        List<String> qemuCommand = new ArrayList<>(BootBench.qemuMicrovm(qemu, MEM_MIB));
        qemuCommand.addAll(List.of("-device", "isa-debug-exit,iobase=0x64,iosize=1", "-kernel", guest.toString()));
        Side qemuSide = new Side("qemu", qemuCommand, QEMU_GUEST_EXIT);

        Path dir = Files.createTempDirectory("kindling-bench-startup-");
        try {
            // after a build, the launcher's first run records the classes `run` loads and its second
            // writes the class-data archive; both sides also get the page cache warm
            for (int w = 1; w <= WARM_UPS; w++) {
                err.printf("bench startup: warm-up %d kindling %s%n", w, sample(measure, kindling, dir));
                err.printf("bench startup: warm-up %d qemu     %s%n", w, sample(measure, qemuSide, dir));
            }
            // [0] wall ms, [1] peak RSS MiB, per run
            double[][] kindlingValues = new double[2][runs];
            double[][] qemuValues = new double[2][runs];
            for (int r = 0; r < runs; r++) {
                Sample ks = sample(measure, kindling, dir);
                Sample qs = sample(measure, qemuSide, dir);
                err.printf("bench startup: run %d kindling %s, qemu %s%n", r + 1, ks, qs);
                kindlingValues[0][r] = ks.wallMs();
                kindlingValues[1][r] = ks.rssMib();
                qemuValues[0][r] = qs.wallMs();
                qemuValues[1][r] = qs.rssMib();
            }
            out.printf("%-20s %10s %10s %7s%n", "metric (median)", "kindling", "qemu", "ratio");
            String[] names = {"wall-ms", "peak-rss-mib"};
            double[] ratio = new double[2];
            for (int i = 0; i < 2; i++) {
                double kv = Bench.median(kindlingValues[i]), qv = Bench.median(qemuValues[i]);
                ratio[i] = kv / qv;
                out.printf("%-20s %10.1f %10.1f %7.2f%n", names[i], kv, qv, ratio[i]);
            }
            out.printf("(%d alternating runs after %d warm-ups each; %s, %d MiB, 1 vCPU; whole processes: ./kindling run"
                    + " with the JVM it execs, and qemu-system-x86_64 -M microvm; peak RSS = ru_maxrss of each from wait4;"
                    + " ratio = kindling / qemu)%n", runs, WARM_UPS, GUEST, MEM_MIB);
            out.printf("startup-ratio: wall %.2f rss %.2f%n", ratio[0], ratio[1]);
            return 0;
        } finally {
            for (String f : List.of("stdout", "stderr")) {
                Files.deleteIfExists(dir.resolve(f));
            }
            Files.deleteIfExists(dir);
        }
    }

    /** Runs one side once; it must print the guest's line and end with the status of the guest's own reset. */
    static Sample sample(Path measure, Side side, Path dir) throws IOException, InterruptedException {
        Path stdout = dir.resolve("stdout");
        Path stderr = dir.resolve("stderr");
        MeasuredRun.Result r = MeasuredRun.run(measure, side.command(), stdout, stderr, LIMIT);
        String text = Files.readString(stdout, StandardCharsets.ISO_8859_1);
        if (!r.exitedWith(side.cleanExit()) || !text.contains(GREETING)) {
            String why = Files.readAllLines(stderr, StandardCharsets.ISO_8859_1).stream()
                    .filter(l -> !l.isBlank()).findFirst().orElse("nothing on stderr");
            throw new IllegalStateException(side.name() + " did not run the guest to its end (" + r.describe()
                    + (text.contains(GREETING) ? "" : ", no '" + GREETING + "' on stdout") + "): " + why);
        }
        return new Sample(r.wallNanos() / 1e6, r.maxRssKib() / 1024.0);
    }
}
