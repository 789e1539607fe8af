package dev.kindling.cli;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.List;

/** {@code kindling bench exits|boot|startup|blk|net|vsock|sandbox|snapshot}. */
final class Bench {
    private Bench() {}

    static int run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        if (argv.isEmpty()) {
            throw new UsageException("bench needs a benchmark: exits, boot, startup, blk, net, vsock, sandbox or snapshot");
        }
        List<String> rest = argv.subList(1, argv.size());
        return switch (argv.getFirst()) {
            case "exits" -> {
                Workspace.buildGuests(err);
                yield ExitBench.run(rest, out);
            }
            case "boot" -> BootBench.run(rest, out, err);
            case "startup" -> StartupBench.run(rest, out, err);
            case "blk" -> BlkBench.run(rest, out, err);
            case "net" -> NetBench.run(rest, out, err);
            case "vsock" -> VsockBench.run(rest, out, err);
            case "ivshmem" -> IvshmemBench.run(rest, out, err);
            case "sandbox" -> SandboxBench.run(rest, out, err);
            case "snapshot" -> SnapshotBench.run(rest, out, err);
            default -> throw new UsageException("unknown benchmark '" + argv.getFirst() + "'");
        };
    }

    static double median(double[] values) {
        double[] v = values.clone();
        Arrays.sort(v);
        int n = v.length;
        return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    }

    /**
     * A bench guest program's result lines, those starting with {@code okPrefix}; a line starting with
     * {@code errorPrefix}, or no {@code doneLine}, is a failure naming {@code side}.
     */
    static List<String> guestResults(String side, String console, String errorPrefix, String doneLine, String okPrefix) {
        List<String> lines = console.lines().map(String::strip).toList();
        for (String l : lines) {
            if (l.startsWith(errorPrefix)) {
                throw new IllegalStateException(side + ": " + l);
            }
        }
        if (!lines.contains(doneLine)) {
            throw new IllegalStateException(side + ": the guest program did not finish" + lastLines(console));
        }
        return lines.stream().filter(l -> l.startsWith(okPrefix)).toList();
    }

    /** The last five non-blank lines of a program's output, for an error message. */
    static String lastLines(String text) {
        List<String> l = text.lines().filter(s -> !s.isBlank()).toList();
        return l.isEmpty() ? "; no output" : "; output ended with:\n  " + String.join("\n  ", l.subList(Math.max(0, l.size() - 5), l.size()));
    }
}
