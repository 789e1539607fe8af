package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** {@code kindling image}: what it hands the image script, and usage errors before anything runs. */
class ImageCommandTest {
    private static String usageError(String... args) {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Kindling.run(List.of(args), new ByteArrayInputStream(new byte[0]),
                new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertThat(status).as(String.join(" ", args)).isEqualTo(64);
        return err.toString(StandardCharsets.UTF_8).lines().findFirst().orElseThrow();
    }

    @Test
    void badArgumentsAreUsageErrorsNamingTheMistake() {
        assertThat(usageError("image")).isEqualTo("kindling: image needs a kind of image: debian");
        assertThat(usageError("image", "ubuntu")).isEqualTo("kindling: unknown image 'ubuntu' (there is: debian)");
        assertThat(usageError("image", "debian")).isEqualTo("kindling: image debian needs --out PATH");
        assertThat(usageError("image", "debian", "--out", "x", "--packages", "python3,Bad!"))
                .isEqualTo("kindling: --packages: 'Bad!' is not a Debian package name");
        assertThat(usageError("image", "debian", "--out", "x", "--packages", "python3,"))
                .isEqualTo("kindling: --packages: '' is not a Debian package name");
        assertThat(usageError("image", "debian", "--out", "x", "--size", "0"))
                .isEqualTo("kindling: --size takes a number of MiB above 0, got 0");
        assertThat(usageError("image", "debian", "--out", "x", "--size", "big"))
                .isEqualTo("kindling: --size takes a whole number, got 'big'");
        assertThat(usageError("image", "debian", "--out", "x", "--mirror", "http://example")).isEqualTo("kindling: unknown option --mirror");
    }

    @Test
    void theScriptGetsAnAbsoluteOutputPathAndTheOptionsGiven() {
        assertThat(ImageCommand.debianScriptArgs(List.of("--out", "img.ext4", "--packages", "python3,curl", "--size", "512")))
                .containsExactly("--out", Path.of("img.ext4").toAbsolutePath().toString(), "--packages", "python3,curl",
                        "--size", "512");
        assertThat(ImageCommand.debianScriptArgs(List.of("--out=/tmp/a.ext4"))).containsExactly("--out", "/tmp/a.ext4");
    }
}
