package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.sandbox.ExecResult;
import dev.kindling.sandbox.Sandbox;
import dev.kindling.testing.Require;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Debian image of {@code kindling image debian --packages python3} as a sandbox's root disk: the
 * agent's initramfs mounts it and hands over, and Debian's python3 runs. One boot.
 */
@Timeout(2400)
class DebianSandboxLinuxTest {
    /** A boot takes 1-5 minutes here, where guest kernel code is emulated and other work loads the host. */
    private static final Duration BOOT = Duration.ofMinutes(15);
    private static final Duration EXEC = Duration.ofMinutes(5);
    /**
     * python3's first start pages some MiB of its library in through ext4 while guest kernel code is
     * emulated here: the agent's one vCPU stays in the kernel longer than the default 5 s of silence.
     */
    private static final Duration UNRESPONSIVE = Duration.ofMinutes(2);

    @TempDir
    Path tmp;

    @Test
    void python3RunsInADebianSandbox() throws Exception {
        TestGuests.assumeKvm();
        String unavailable = System.getenv("KINDLING_GUEST_UNAVAILABLE");
        Require.that(unavailable == null, "no Linux test kernel: " + unavailable);
        Path image = tmp.resolve("debian.ext4");
        ByteArrayOutputStream progress = new ByteArrayOutputStream();
        try (PrintStream p = new PrintStream(progress, true, StandardCharsets.UTF_8)) {
            ImageCommand.debian(TestGuests.root(),
                    ImageCommand.debianScriptArgs(List.of("--out", image.toString(), "--packages", "python3")), p);
        } catch (PrerequisiteException e) {
            Require.unavailable(e.getMessage(), e);
        } finally {
            System.err.print(progress.toString(StandardCharsets.UTF_8));
        }

        long t0 = System.nanoTime();
        try (Sandbox sandbox = Sandbox.builder().name("debian").memoryMib(256).rootDisk(image).bootTimeout(BOOT)
                .unresponsiveAfter(UNRESPONSIVE).build()) {
            System.err.printf("[debian sandbox] booted to the agent in %.0f s%n", (System.nanoTime() - t0) / 1e9);
            long t1 = System.nanoTime();
            ExecResult r = sandbox.exec(EXEC, "python3", "-c", "print(6*7)");
            System.err.printf("[debian sandbox] python3 ran in %.1f s%n", (System.nanoTime() - t1) / 1e9);
            assertThat(r).as(r.toString()).isEqualTo(new ExecResult(0, "42\n", "", false));
            // the root is the image's Debian, not the initramfs
            ExecResult release = sandbox.exec(EXEC, "cat", "/etc/debian_version");
            assertThat(release.exitCode()).as(release.toString()).isZero();
            assertThat(release.stdout()).startsWith("12.");
        }
    }
}
