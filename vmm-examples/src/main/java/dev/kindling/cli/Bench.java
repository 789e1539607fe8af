package dev.kindling.cli;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.List;

/** {@code kindling bench exits|boot|startup|blk|net|vsock}. */
final class Bench {
    private Bench() {}

    static int run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        if (argv.isEmpty()) {
            throw new UsageException("bench needs a benchmark: exits, boot, startup, blk, net or vsock");
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
            default -> throw new UsageException("unknown benchmark '" + argv.getFirst() + "'");
        };
    }

    static double median(double[] values) {
        double[] v = values.clone();
        Arrays.sort(v);
        int n = v.length;
        return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    }
}
