package dev.kindling.sandbox;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Where the default kernel and initramfs come from, and the error that names the command building them. */
class GuestDirTest {
    @TempDir
    Path tmp;

    private static Path guest(Path dir, boolean agent, long mtime) throws Exception {
        Files.createDirectories(dir);
        for (String f : new String[] {"vmlinux", "initramfs.cpio", "cmdline"}) {
            Files.writeString(dir.resolve(f), "console=ttyS0\n");
        }
        Files.setLastModifiedTime(dir.resolve("initramfs.cpio"), FileTime.fromMillis(mtime));
        if (agent) {
            Files.writeString(dir.resolve("agent"), "1\n");
        }
        return dir;
    }

    @Test
    void noBuiltGuestNamesTheBuildCommand() {
        assertThatThrownBy(() -> GuestDir.locate(null, null, tmp.toString(), "/nonexistent"))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("scripts/build-guest-kernel.sh")
                .hasMessageContaining(tmp.toString());
    }

    @Test
    void theNewestCachedGuestWithTheAgentWins() throws Exception {
        guest(tmp.resolve("guest-old"), true, 1_000_000);
        Path newest = guest(tmp.resolve("guest-new"), true, 2_000_000);
        guest(tmp.resolve("guest-newer-without-agent"), false, 3_000_000);
        GuestDir g = GuestDir.locate(null, null, tmp.toString(), "/nonexistent");
        assertThat(g.dir()).isEqualTo(newest);
        assertThat(g.cmdline()).isEqualTo("console=ttyS0");
        Path home = tmp.resolve("home");
        Path cached = guest(home.resolve(".cache/kindling/guest-x"), true, 1);
        assertThat(GuestDir.locate(null, null, null, home.toString()).dir()).as("default cache: ~/.cache/kindling").isEqualTo(cached);
    }

    @Test
    void theVariableThenThePropertyAreTakenAsGiven() throws Exception {
        Path a = guest(tmp.resolve("a"), true, 1);
        Path b = guest(tmp.resolve("b"), true, 1);
        assertThat(GuestDir.locate(a.toString(), b.toString(), null, "/x").dir()).isEqualTo(a);
        assertThat(GuestDir.locate(null, b.toString(), null, "/x").dir()).isEqualTo(b);
        Path incomplete = guest(tmp.resolve("c"), false, 1);
        assertThatThrownBy(() -> GuestDir.locate(incomplete.toString(), null, null, "/x"))
                .hasMessageContaining("KINDLING_GUEST_DIR").hasMessageContaining("scripts/build-guest-kernel.sh");
    }
}
