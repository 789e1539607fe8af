package dev.kindling.examples;

import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.testing.BoundedProcess;
import dev.kindling.testing.Require;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * The directory of the Linux guest scripts/build-guest-kernel.sh built: KINDLING_GUEST_DIR (set by
 * scripts/test), else the script's cache if it is built. The examples' tests skip (fail in strict
 * mode) without KVM or without it, with the reason, as the machine tests do; also for the CLI tests of the examples.
 */
public final class GuestDir {
    private GuestDir() {}

    public static Path locate() throws IOException, InterruptedException {
        TestGuests.assumeKvm();
        String dir = System.getenv("KINDLING_GUEST_DIR");
        String unavailable = System.getenv("KINDLING_GUEST_UNAVAILABLE");
        Require.that(dir != null || unavailable == null, "no Linux test kernel: " + unavailable);
        if (dir == null) {
            Path script = TestGuests.root().resolve("scripts/build-guest-kernel.sh");
            BoundedProcess.Result r = BoundedProcess.run(Duration.ofMinutes(2), script.toString(), "--print-dir");
            Require.that(r.succeeded() && !r.output().isBlank(),
                    "the Linux test kernel is not built: run scripts/build-guest-kernel.sh (scripts/test does)");
            dir = r.output().strip().lines().reduce((a, b) -> b).orElseThrow();
        }
        Path d = Path.of(dir);
        Require.that(Files.isRegularFile(d.resolve("vmlinux")) && Files.isRegularFile(d.resolve("initramfs.cpio")),
                "no vmlinux and initramfs.cpio in " + d + ": rebuild with scripts/build-guest-kernel.sh");
        return d;
    }
}
