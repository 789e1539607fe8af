package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.microvm.ConfigException;
import dev.kindling.microvm.MicrovmBuilder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code kindling run}'s virtio options, parsed and checked without KVM. */
class RunCommandArgsTest {
    @TempDir
    Path tmp;

    private static MicrovmBuilder configure(String... argv) {
        return RunCommand.configure(new Args(List.of(argv), RunCommand.OPTIONS, RunCommand.FLAGS));
    }

    private Path kernel() throws Exception {
        return Files.write(tmp.resolve("k.elf"), new byte[] {0x7f, 'E', 'L', 'F', 0, 0, 0, 0});
    }

    @Test
    void diskTakesAPathAndOptions() {
        assertThat(RunCommand.Disk.parse("/a.img")).isEqualTo(new RunCommand.Disk(Path.of("/a.img"), false, false));
        assertThat(RunCommand.Disk.parse("/a.img,ro")).isEqualTo(new RunCommand.Disk(Path.of("/a.img"), true, false));
        assertThat(RunCommand.Disk.parse("/a.img,root,ro")).isEqualTo(new RunCommand.Disk(Path.of("/a.img"), true, true));
        assertThatThrownBy(() -> RunCommand.Disk.parse("/a.img,rw")).isInstanceOf(UsageException.class)
                .hasMessage("--disk /a.img,rw: unknown option 'rw' (PATH[,ro][,root])");
        assertThatThrownBy(() -> RunCommand.Disk.parse(",ro")).isInstanceOf(UsageException.class)
                .hasMessageContaining("PATH[,ro][,root]");
        assertThatThrownBy(() -> configure("--disk")).isInstanceOf(UsageException.class).hasMessage("--disk needs a value");
    }

    @Test
    void disksAreRepeatableAndCheckedByValidate() throws Exception {
        String k = kernel().toString();
        Path a = Files.write(tmp.resolve("a.img"), new byte[4096]);
        Path b = Files.write(tmp.resolve("b.img"), new byte[4096]);
        configure("--kernel", k, "--disk", a.toString(), "--disk", b + ",ro", "--virtio-console", "--rng").validate();

        assertThatThrownBy(() -> configure("--kernel", k, "--disk", tmp.resolve("none.img").toString()).validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioBlk"))
                .hasMessageContaining("none.img does not exist");
        assertThatThrownBy(() -> configure("--kernel", k, "--disk", a.toString(), "--disk", a.toString()).validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioBlk"))
                .hasMessageContaining("both use");
        assertThatThrownBy(() -> configure("--kernel", k, "--disk", a + ",root", "--disk", b + ",root").validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("rootDevice"));
        Files.setPosixFilePermissions(b, PosixFilePermissions.fromString("r--r--r--"));
        assertThatThrownBy(() -> configure("--kernel", k, "--disk", b.toString()).validate())
                .isInstanceOf(ConfigException.class).hasMessageContaining("read-only");
        configure("--kernel", k, "--disk", b + ",ro").validate();

        String[] nine = new String[2 + 2 * 8 + 1];
        nine[0] = "--kernel";
        nine[1] = k;
        for (int i = 0; i < 8; i++) {
            nine[2 + 2 * i] = "--disk";
            nine[3 + 2 * i] = b + ",ro";
        }
        nine[nine.length - 1] = "--rng";
        assertThatThrownBy(() -> configure(nine).validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioRng"))
                .hasMessageContaining("8 transports");
    }

    @Test
    void flagsTakeNoValue() {
        assertThatThrownBy(() -> configure("--rng=yes")).isInstanceOf(UsageException.class).hasMessage("unknown option --rng");
    }
}
