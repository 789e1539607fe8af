package dev.kindling.junit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.microvm.ConfigException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Where the extension finds the Linux guest that scripts/build-guest-kernel.sh builds. */
class BuiltGuestTest {
    @TempDir
    Path tmp;

    private Path guest(String name, long mtime, boolean gz) throws IOException {
        Path d = Files.createDirectories(tmp.resolve(name));
        Files.writeString(d.resolve("vmlinux"), "elf");
        Files.setLastModifiedTime(d.resolve("vmlinux"), FileTime.fromMillis(mtime));
        Files.writeString(d.resolve("cmdline"), "console=ttyS0 " + name + "\n");
        Files.writeString(d.resolve(gz ? "initramfs.cpio.gz" : "initramfs.cpio"), "cpio");
        return d;
    }

    private static BuiltGuest locate(Map<String, String> env, Map<String, String> properties) {
        return BuiltGuest.locate(env::get, k -> Optional.ofNullable(properties.get(k)));
    }

    @Test
    void theEnvironmentVariableComesFirstThenTheProperty() throws IOException {
        Path a = guest("guest-a", 1000, false);
        Path b = guest("guest-b", 2000, true);
        BuiltGuest g = locate(Map.of("KINDLING_GUEST_DIR", a.toString()), Map.of("kindling.guest.dir", b.toString()));
        assertThat(g).isEqualTo(new BuiltGuest(a, a.resolve("vmlinux"), a.resolve("initramfs.cpio"), "console=ttyS0 guest-a"));
        assertThat(locate(Map.of(), Map.of("kindling.guest.dir", b.toString())).initramfs()).isEqualTo(b.resolve("initramfs.cpio.gz"));
    }

    @Test
    void elseTheNewestGuestInTheCache() throws IOException {
        guest("guest-old", 1000, false);
        Path newest = guest("guest-new", 3000, false);
        guest("guest-older", 500, false);
        Files.createDirectories(tmp.resolve("guest-half-built")); // no vmlinux: not a candidate
        Files.createDirectories(tmp.resolve("work"));
        assertThat(locate(Map.of("KINDLING_CACHE", tmp.toString()), Map.of()).dir()).isEqualTo(newest);
        Path home = Files.createDirectories(tmp.resolve("home/.cache/kindling"));
        Files.move(newest, home.resolve("guest-new"));
        assertThat(locate(Map.of("HOME", tmp.resolve("home").toString()), Map.of()).dir()).isEqualTo(home.resolve("guest-new"));
    }

    @Test
    void noGuestNamesTheScriptThatBuildsIt() throws IOException {
        assertThatThrownBy(() -> locate(Map.of("KINDLING_CACHE", tmp.resolve("empty").toString()), Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("no Linux guest is built").hasMessageContaining("run scripts/build-guest-kernel.sh");
        Path notAGuest = Files.createDirectories(tmp.resolve("not-a-guest"));
        assertThatThrownBy(() -> locate(Map.of("KINDLING_GUEST_DIR", notAGuest.toString()), Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessage(notAGuest + " is not a guest built by scripts/build-guest-kernel.sh (it has no vmlinux or no cmdline): "
                        + "run scripts/build-guest-kernel.sh");
    }
}
