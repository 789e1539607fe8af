package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.examples.GuestDir;
import dev.kindling.examples.PythonSandbox;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.sandbox.ExecResult;
import dev.kindling.testing.Require;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@link PythonSandbox} example: one boot from the Debian image with python3 that
 * {@code kindling image debian} builds (cached by its inputs, so only the first run of this or of
 * DebianImageTest pays for debootstrap; skipped with the reason where the host cannot build it).
 */
class PythonSandboxExampleTest {
    @TempDir
    Path tmp;

    @Test
    @Timeout(2400)
    void printsFortyTwo() throws Exception {
        GuestDir.locate();
        Path image = tmp.resolve("debian.img");
        try {
            ImageCommand.debian(TestGuests.root(), ImageCommand.debianScriptArgs(
                    List.of("--out", image.toString(), "--packages", "python3")), System.err);
        } catch (PrerequisiteException e) {
            Require.unavailable(e.getMessage(), e);
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        ExecResult r = PythonSandbox.run(image, new PrintStream(bytes, true, StandardCharsets.UTF_8));
        assertThat(r.exitCode()).as(r.stderr()).isZero();
        assertThat(r.stdout()).isEqualTo("42\n");
        assertThat(bytes.toString(StandardCharsets.UTF_8)).isEqualTo("42\n");
    }
}
