package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.blk.BlkOptions;
import dev.kindling.machine.StopReason;
import dev.kindling.testing.BoundedProcess;
import dev.kindling.testing.Require;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Linux test guest's own virtio drivers against Kindling's devices, in one boot
 * ({@code kindling.action=virtio} of guest/initramfs/init): with the serial port off and
 * {@code console=hvc0}, everything the guest prints arrives through virtio-console; it mounts an
 * ext4 image from virtio-blk ({@code vda}), reads the file the test put there, writes one and runs
 * {@code sync}; a second, read-only disk ({@code vdb}) refuses a file write on its read-only mount
 * and a raw write to the device; {@code /dev/hwrng} gives two different reads. After the VM ends,
 * the test finds the guest's file in the image and the read-only image unchanged.
 */
@Timeout(1500)
class VirtioLinuxTest {
    /** A boot takes 1-5 minutes here, where guest kernel code is emulated and other work loads the host. */
    private static final Duration BOOT = Duration.ofMinutes(20);
    private static final Duration TOOL = Duration.ofMinutes(1);

    @TempDir
    Path tmp;

    /** An ext4 image of 8 MiB holding {@code /from-host.txt} with {@code text}, made by mkfs.ext4 -d. */
    private Path ext4Image(String name, String text) throws Exception {
        Path root = Files.createDirectory(tmp.resolve(name + "-root"));
        Files.writeString(root.resolve("from-host.txt"), text + "\n");
        Path image = tmp.resolve(name + ".img");
        // everything initialized now, so the guest's kernel has no lazy-init work to do
        tool("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", "-d", root.toString(),
                image.toString(), "8M");
        return image;
    }

    private static BoundedProcess.Result tool(String... command) throws IOException, InterruptedException {
        BoundedProcess.Result r = BoundedProcess.run(TOOL, command);
        assertThat(r.succeeded()).as(r.describe() + ":\n" + r.output()).isTrue();
        return r;
    }

    private static byte[] sha256(Path file) throws Exception {
        return MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file));
    }

    @Test
    void linuxUsesVirtioBlkConsoleAndRngInOneBoot() throws Exception {
        TestKernel k = TestKernel.locate();
        for (String tool : List.of("mkfs.ext4", "debugfs", "e2fsck")) {
            Require.that(Require.onPath(tool), tool + " is not installed (e2fsprogs)");
        }
        String token = "kindling-" + HexFormat.of().formatHex(new SecureRandom().generateSeed(8));
        Path rw = ext4Image("rw", token);
        Path ro = ext4Image("ro", "read-only " + token);
        byte[] roBefore = sha256(ro);
        Files.setPosixFilePermissions(ro, PosixFilePermissions.fromString("r--r--r--")); // as a read-only image would be

        assertThat(k.cmdline()).contains("console=ttyS0");
        String cmdline = k.cmdline().replace("console=ttyS0", "console=hvc0") + " quiet percpu_alloc=page kindling.action=virtio";
        String console;
        try (Microvm vm = Microvm.builder().kernel(k.vmlinux()).initrd(k.initramfs()).memoryMib(64).cmdline(cmdline)
                .isaSerial(false).virtioConsole()
                .virtioBlk(rw).virtioBlk(ro, BlkOptions.defaults().withReadOnly(true)).virtioRng().build()) {
            vm.start();
            StopReason why = vm.awaitExit(BOOT).orElseThrow(
                    () -> new AssertionError("no exit within " + BOOT + "; console:\n" + vm.console().text()));
            console = vm.console().text();
            assertThat(why).as("exit; console:\n" + console).isEqualTo(new StopReason.Reset(StopReason.ResetCause.I8042));
            assertThat(vm.machine().deviceErrors()).as("device errors").isEmpty();
            assertThat(vm.ioMap()).noneMatch(e -> e.device().startsWith("serial"));
        }
        Map<String, String> m = TestKernel.markers(console);
        // no serial port: all of this came through hvc0
        assertThat(m).as("console:\n" + console).containsKeys("INIT-OK", "UPTIME", "RNG");
        assertThat(m.get("CMDLINE")).contains("console=hvc0");

        assertThat(m.get("BLK-READ")).as("the file the test wrote, read by the guest; console:\n" + console).isEqualTo(token);
        assertThat(m).as("console:\n" + console).containsKey("BLK-SYNCED");
        assertThat(m.get("BLK-RO-READ")).as("console:\n" + console).isEqualTo("read-only " + token);
        assertThat(m.get("BLK-RO-FS")).as("a file write on the read-only disk").isEqualTo("refused");
        assertThat(m.get("BLK-RO-RAW")).as("a raw write to the read-only disk").isEqualTo("refused");

        String[] rng = m.get("RNG").split(" ");
        assertThat(rng).as("two reads of /dev/hwrng: " + m.get("RNG")).hasSize(2);
        assertThat(rng[0]).matches("[0-9a-f]{32}").isNotEqualTo("0".repeat(32));
        assertThat(rng[1]).matches("[0-9a-f]{32}").isNotEqualTo(rng[0]);

        // the guest ran sync, not umount: replay the journal, then the file system must be clean
        tool("e2fsck", "-y", "-E", "journal_only", rw.toString());
        tool("e2fsck", "-f", "-n", rw.toString());
        Path fromGuest = tmp.resolve("from-guest.txt");
        tool("debugfs", "-R", "dump /from-guest.txt " + fromGuest, rw.toString());
        assertThat(fromGuest).as("the guest's file, read on the host").hasContent("guest read: " + token);
        assertThat(sha256(ro)).as("the read-only image").isEqualTo(roBefore);
    }
}
