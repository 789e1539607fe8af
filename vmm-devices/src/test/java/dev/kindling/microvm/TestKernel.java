package dev.kindling.microvm;

import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.testing.BoundedProcess;
import dev.kindling.testing.Require;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;

/**
 * The Linux test kernel built by scripts/build-guest-kernel.sh: KINDLING_GUEST_DIR (set by
 * scripts/test), else the script's cache if it is already built. Tests skip (fail in strict mode,
 * see {@link Require}) when there is none: with the reason scripts/test found in
 * KINDLING_GUEST_UNAVAILABLE (this distribution has no linux-source-6.1), else with the command that
 * builds it.
 */
public record TestKernel(Path vmlinux, Path bzImage, Path initramfs, String cmdline) {
    public static TestKernel locate() throws IOException, InterruptedException {
        TestGuests.assumeKvm();
        String dir = System.getenv("KINDLING_GUEST_DIR");
        String unavailable = System.getenv("KINDLING_GUEST_UNAVAILABLE");
        Require.that(dir != null || unavailable == null, "no Linux test kernel: " + unavailable);
        if (dir == null) {
            Path script = TestGuests.root().resolve("scripts/build-guest-kernel.sh");
            Require.that(Files.isExecutable(script), "no scripts/build-guest-kernel.sh");
            BoundedProcess.Result r = BoundedProcess.run(Duration.ofMinutes(2), script.toString(), "--print-dir");
            Require.that(r.succeeded() && !r.output().isBlank(),
                    "the Linux test kernel is not built: run scripts/build-guest-kernel.sh (scripts/test does)");
            dir = r.output().strip().lines().reduce((a, b) -> b).orElseThrow();
        }
        Path d = Path.of(dir);
        Path cpio = d.resolve("initramfs.cpio");
        return new TestKernel(d.resolve("vmlinux"), d.resolve("bzImage"),
                Files.exists(cpio) ? cpio : d.resolve("initramfs.cpio.gz"), Files.readString(d.resolve("cmdline")).trim());
    }

    /** The command line for a quick test boot that powers off after reporting. */
    String testCmdline() {
        return cmdline + " quiet percpu_alloc=page kindling.action=poweroff";
    }

    /** The {@code KINDLING-<KEY> value} lines the test init prints. */
    static Map<String, String> markers(String console) {
        Map<String, String> m = new HashMap<>();
        for (String line : console.lines().toList()) {
            int at = line.indexOf("KINDLING-");
            if (at < 0) {
                continue;
            }
            String rest = line.substring(at + "KINDLING-".length()).strip();
            int sp = rest.indexOf(' ');
            m.put(sp < 0 ? rest : rest.substring(0, sp), sp < 0 ? "" : rest.substring(sp + 1));
        }
        return m;
    }
}
