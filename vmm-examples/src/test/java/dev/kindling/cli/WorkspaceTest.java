package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.testing.Require;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** What the command line makes of the guest kernel build script's outcomes. */
@Timeout(120)
class WorkspaceTest {
    @TempDir
    Path tmp;

    @Test
    void aHostThatCannotProvideTheKernelPackagesIsOneLineWithTheScriptsReason() throws Exception {
        String root = System.getProperty("kindling.root");
        Require.that(root != null, "kindling.root is not set: run the tests through Maven from the repository");
        // the real script on a PATH with only what it needs to get going: no dpkg-query, no apt-get
        Path bin = Files.createDirectory(tmp.resolve("bin"));
        String path = System.getenv().getOrDefault("PATH", "");
        for (String tool : new String[] {"bash", "readlink", "dirname"}) {
            Path real = new HostTool(tool, tool).find(path).orElseThrow(() -> new AssertionError(tool + " not on PATH"));
            Path wrapper = Files.writeString(bin.resolve(tool), "#!/bin/sh\nexec " + real + " \"$@\"\n");
            Files.setPosixFilePermissions(wrapper, PosixFilePermissions.fromString("rwxr-xr-x"));
        }
        ProcessBuilder script = new ProcessBuilder(Path.of(root, "scripts/build-guest-kernel.sh").toString());
        script.environment().put("PATH", bin.toString());
        script.environment().put("KINDLING_CACHE", tmp.resolve("cache").toString());
        ByteArrayOutputStream progress = new ByteArrayOutputStream();

        assertThatThrownBy(() -> Workspace.buildKernel(script, new PrintStream(progress, true, StandardCharsets.UTF_8)))
                .isInstanceOf(PrerequisiteException.class)
                .hasMessage("no guest kernel: no apt-get/dpkg on this machine: the guest is built from Debian's linux-source-6.1");
        assertThat(progress.toString(StandardCharsets.UTF_8)).as("the reason is said once, by the exception").isEmpty();
    }
}
