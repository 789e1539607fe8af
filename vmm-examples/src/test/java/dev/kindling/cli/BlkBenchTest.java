package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code kindling bench blk}: its arguments, the initramfs it writes and how it reads the guest's lines. */
class BlkBenchTest {
    @TempDir
    Path tmp;

    private static int kindling(ByteArrayOutputStream err, String... args) {
        return Kindling.run(List.of(args), new ByteArrayInputStream(new byte[0]), new PrintStream(new ByteArrayOutputStream()),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    @Test
    void badArgumentsAreUsageErrorsBeforeAnythingIsInstalledOrRun() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        assertThat(kindling(err, "bench", "blk", "--runs", "0")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --runs must be at least 1")
                .contains("kindling bench blk [--runs N] [--mib N] [--ops N]");
        err.reset();
        assertThat(kindling(err, "bench", "blk", "--mib", "0")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --mib must be between 1 and 1024");
        err.reset();
        assertThat(kindling(err, "bench", "blk", "--ops", "x")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --ops takes a whole number, got 'x'");
        err.reset();
        assertThat(kindling(err, "bench", "blk", "fast")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: bench blk takes no arguments besides its options");
    }

    record Entry(String name, int mode, int rdevMajor, int rdevMinor, byte[] data) {}

    /** Reads a newc archive back, checking the magic and the 4-byte alignment of names and data. */
    static List<Entry> readNewc(byte[] a) {
        List<Entry> entries = new ArrayList<>();
        int p = 0;
        while (true) {
            assertThat(p % 4).as("entry at %d is 4-byte aligned", p).isZero();
            assertThat(new String(a, p, 6, StandardCharsets.US_ASCII)).isEqualTo("070701");
            int[] f = new int[13];
            for (int i = 0; i < 13; i++) {
                f[i] = Integer.parseUnsignedInt(new String(a, p + 6 + 8 * i, 8, StandardCharsets.US_ASCII), 16);
            }
            int nameSize = f[11], size = f[6];
            String name = new String(a, p + 110, nameSize - 1, StandardCharsets.US_ASCII);
            assertThat(a[p + 110 + nameSize - 1]).as("NUL after the name").isZero();
            int data = (p + 110 + nameSize + 3) & ~3;
            entries.add(new Entry(name, f[1], f[9], f[10], Arrays.copyOfRange(a, data, data + size)));
            if (name.equals("TRAILER!!!")) {
                return entries;
            }
            p = (data + size + 3) & ~3;
        }
    }

    @Test
    void initramfsHoldsDevConsoleAndTheProgramAsInit() throws Exception {
        Path cpio = tmp.resolve("initramfs.cpio");
        byte[] program = "\u007fELF and then some".getBytes(StandardCharsets.ISO_8859_1);
        BlkBench.writeInitramfs(cpio, program);
        List<Entry> e = readNewc(Files.readAllBytes(cpio));
        assertThat(e).extracting(Entry::name).containsExactly("dev", "dev/console", "init", "TRAILER!!!");
        assertThat(e.get(0).mode()).isEqualTo(0040755);
        assertThat(e.get(1).mode()).isEqualTo(0020600);
        assertThat(e.get(1).rdevMajor()).isEqualTo(5);
        assertThat(e.get(1).rdevMinor()).isEqualTo(1);
        assertThat(e.get(2).mode()).isEqualTo(0100755);
        assertThat(e.get(2).data()).isEqualTo(program);
    }

    @Test
    void guestLinesBecomeRatesAndAFailureInTheGuestIsNamed() {
        String console = """
                [    9.1] random kernel line
                BLKBENCH seq-write 1 8388608 2000000000
                BLKBENCH seq-read 1 8388608 1000000000
                BLKBENCH randread-4k 1 256 512000000
                BLKBENCH seq-write 2 8388608 4000000000
                BLKBENCH seq-read 2 8388608 500000000
                BLKBENCH randread-4k 2 256 256000000
                BLKBENCH-DONE
                """;
        BlkBench.Figures f = BlkBench.parse(BlkBench.results("test", console));
        assertThat(f.median(0)).as("seq-read MiB/s").isEqualTo(12.0);
        assertThat(f.median(1)).as("seq-write MiB/s").isEqualTo(3.0);
        assertThat(f.median(2)).as("randread IOPS").isEqualTo(750.0);
        assertThatThrownBy(() -> BlkBench.results("QEMU", "BLKBENCH-ERROR open /dev/vda: No such file or directory\n"))
                .hasMessage("QEMU: BLKBENCH-ERROR open /dev/vda: No such file or directory");
        assertThatThrownBy(() -> BlkBench.results("Kindling", "BLKBENCH seq-write 1 1 1\n"))
                .hasMessageStartingWith("Kindling: the guest program did not finish");
    }
}
