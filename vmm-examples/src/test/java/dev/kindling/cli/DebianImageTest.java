package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.testing.BoundedProcess;
import dev.kindling.testing.Require;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code kindling image debian}: scripts/build-debian-image.sh builds a Debian 12 ext4 image with
 * python3 (debootstrap from this machine's mirror: a minute or two the first time, then cached), read
 * here with debugfs, without mounting. Skips with the script's reason where it cannot build (no root,
 * no apt, no Debian mirror).
 */
@Timeout(1200)
class DebianImageTest {
    private static final Duration DEBUGFS_LIMIT = Duration.ofSeconds(60);

    @TempDir
    Path tmp;

    @Test
    void theImageHoldsPython3AndTheSecondBuildComesFromTheCache() throws Exception {
        Path debugfs = tool("debugfs");
        Path image = tmp.resolve("debian.ext4");
        List<String> args = ImageCommand.debianScriptArgs(List.of("--out", image.toString(), "--packages", "python3"));

        build(args, image); // from the cache too, if an earlier run built it

        String python = debugfs(debugfs, image, "stat /usr/bin/python3");
        assertThat(python).contains("Type: symlink").containsPattern("Fast link dest: \"python3\\.\\d+\"");
        String target = python.replaceAll("(?s).*Fast link dest: \"([^\"]+)\".*", "$1");
        assertThat(debugfs(debugfs, image, "stat /usr/bin/" + target)).contains("Type: regular").contains("Mode:  0755");
        assertThat(debugfs(debugfs, image, "cat /etc/hostname").strip()).endsWith("kindling");
        // the agent's /init mounts the image and moves to it: it needs /run (its tmpfs) and the usual mount points
        for (String dir : List.of("/run", "/proc", "/sys", "/dev", "/tmp")) {
            assertThat(debugfs(debugfs, image, "stat " + dir)).as(dir).contains("Type: directory");
        }
        // apt's caches stay out of the image
        assertThat(debugfs(debugfs, image, "ls -p /var/lib/apt/lists")).doesNotContain("_Packages");
        assertThat(debugfs(debugfs, image, "ls -p /var/cache/apt/archives")).doesNotContain(".deb");
        assertThat(run(tool("dumpe2fs"), "-h", image.toString())).contains("Filesystem volume name:   kindling-root");

        Files.delete(image);
        String second = build(args, image);
        assertThat(second).contains("[image] cached: ").doesNotContain("debootstrap");
        assertThat(image).isRegularFile();
    }

    /** Builds (or takes from the cache) the image at {@code image}; returns the script's progress. */
    private static String build(List<String> args, Path image) throws Exception {
        ByteArrayOutputStream progress = new ByteArrayOutputStream();
        Path built;
        try (PrintStream p = new PrintStream(progress, true, StandardCharsets.UTF_8)) {
            built = ImageCommand.debian(TestGuests.root(), args, p);
        } catch (PrerequisiteException e) {
            return Require.unavailable(e.getMessage(), e);
        } finally {
            System.err.print(progress.toString(StandardCharsets.UTF_8)); // the timings, for the test report
        }
        assertThat(built).isEqualTo(image.toAbsolutePath());
        assertThat(Files.size(image)).isGreaterThan(64L << 20);
        return progress.toString(StandardCharsets.UTF_8);
    }

    private static String debugfs(Path debugfs, Path image, String request) throws Exception {
        return run(debugfs, "-R", request, image.toString());
    }

    private static String run(Path tool, String... args) throws Exception {
        List<String> command = Stream.concat(Stream.of(tool.toString()), Stream.of(args)).toList();
        BoundedProcess.Result r = BoundedProcess.run(DEBUGFS_LIMIT, null, command);
        assertThat(r.succeeded()).as(r.describe() + "\n" + r.output()).isTrue();
        return r.output();
    }

    /** An e2fsprogs tool: in /usr/sbin or /sbin, which a user's PATH may lack. */
    private static Path tool(String name) {
        return Stream.of("/usr/sbin", "/sbin", "/usr/bin").map(d -> Path.of(d, name)).filter(Files::isExecutable)
                .findFirst().orElseGet(() -> Require.unavailable(name + " is missing (apt-get install e2fsprogs)"));
    }
}
