package dev.kindling.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.opentest4j.AssertionFailedError;
import org.opentest4j.TestAbortedException;

class RequireTest {
    @Test
    void normalModeSkipsWithTheReason() {
        assertThatThrownBy(() -> new Require(false).missing("/dev/kvm is missing", null))
                .isExactlyInstanceOf(TestAbortedException.class)
                .hasMessageContaining("/dev/kvm is missing");
    }

    @Test
    void strictModeFailsWithTheSameReasonAndCause() {
        IOException cause = new IOException("ENOENT");
        assertThatThrownBy(() -> new Require(true).missing("/dev/kvm is missing", cause))
                .isExactlyInstanceOf(AssertionFailedError.class)
                .hasMessageContaining("/dev/kvm is missing")
                .hasMessageContaining("KINDLING_REQUIRE_KVM=1")
                .hasCause(cause);
    }

    @Test
    void theModeComesFromTheEnvironmentVariable() {
        boolean strict = "1".equals(System.getenv(Require.STRICT_VARIABLE));
        assertThatThrownBy(() -> Require.unavailable("probe"))
                .isExactlyInstanceOf(strict ? AssertionFailedError.class : TestAbortedException.class)
                .hasMessageContaining("probe");
        assertThatThrownBy(() -> Require.that(false, "probe"))
                .isExactlyInstanceOf(strict ? AssertionFailedError.class : TestAbortedException.class);
        assertThatCode(() -> Require.that(true, "probe")).doesNotThrowAnyException();
    }

    @Test
    void strictValues() {
        assertThat(Require.strict(null)).isFalse();
        assertThat(Require.strict("")).isFalse();
        assertThat(Require.strict("0")).isFalse();
        assertThat(Require.strict("1")).isTrue();
        assertThatThrownBy(() -> Require.strict("yes")).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("KINDLING_REQUIRE_KVM must be 0 or 1, not 'yes'");
    }

    @Test
    void onPathFindsOnlyExecutables(@TempDir Path dir) throws IOException {
        Path bin = Files.createDirectories(dir.resolve("bin"));
        Files.createFile(bin.resolve("tool"), PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x")));
        Files.createFile(bin.resolve("data"), PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-r--r--")));
        Map<String, String> env = Map.of("PATH", dir + ":" + bin);
        assertThat(Require.onPath("tool", env)).isTrue();
        assertThat(Require.onPath("data", env)).isFalse();
        assertThat(Require.onPath("absent", env)).isFalse();
        assertThat(Require.onPath("tool", Map.of())).isFalse();
    }
}
