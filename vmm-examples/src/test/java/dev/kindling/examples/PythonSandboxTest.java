package dev.kindling.examples;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.sandbox.ExecResult;
import dev.kindling.testing.Require;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link PythonSandbox}: one boot from a Debian image with python3. Building that image needs
 * debootstrap and Debian's mirror (minutes), so the test takes one that exists: KINDLING_DEBIAN_IMAGE,
 * else the one {@code ./kindling example python-sandbox} caches.
 */
class PythonSandboxTest {
    static Path image() {
        String env = System.getenv("KINDLING_DEBIAN_IMAGE");
        String cache = System.getenv("KINDLING_CACHE");
        Path cached = (cache != null ? Path.of(cache) : Path.of(System.getProperty("user.home"), ".cache", "kindling"))
                .resolve("examples/debian-python3.img");
        Path image = env != null ? Path.of(env) : cached;
        Require.that(Files.isRegularFile(image), "no Debian image with python3 at " + image
                + ": build it with ./kindling example python-sandbox, or set KINDLING_DEBIAN_IMAGE");
        return image;
    }

    @Test
    @Timeout(900)
    void printsFortyTwo() throws Exception {
        GuestDir.locate();
        Path image = image();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        ExecResult r = PythonSandbox.run(image, new PrintStream(bytes, true, StandardCharsets.UTF_8));
        assertThat(r.exitCode()).as(r.stderr()).isZero();
        assertThat(r.stdout()).isEqualTo("42\n");
        assertThat(bytes.toString(StandardCharsets.UTF_8)).isEqualTo("42\n");
    }
}
