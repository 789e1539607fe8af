package dev.kindling.cli;

import java.io.PrintStream;
import java.util.List;

/** {@code kindling bench boot}: Kindling against QEMU's microvm on the same kernel and initrd. */
final class BootBench {
    private BootBench() {}

    static int run(List<String> argv, PrintStream out) {
        throw new UsageException("bench boot is not built yet");
    }
}
