package dev.kindling.devices.virtio.blk;

import static dev.kindling.devices.virtio.blk.BlkHarness.data;
import static dev.kindling.devices.virtio.blk.BlkHarness.read;
import static dev.kindling.devices.virtio.blk.BlkHarness.status;
import static dev.kindling.devices.virtio.blk.BlkHarness.write;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import dev.kindling.testing.HostResources;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Opening images, the I/O thread's lifecycle (close, reset, pause), failures, and what is left after. */
class VirtioBlkLifecycleTest {
    private static final int SECTORS = 2048;

    @TempDir
    Path dir;

    private Path image() throws IOException {
        return Files.write(dir.resolve("disk.img"), new byte[SECTORS * 512]);
    }

    private static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void closingWhileRequestsAreInFlightLosesNothingAcknowledged() throws IOException {
        Path img = image();
        int requests = SECTORS / 16, length = 16 * 512;
        Map<Integer, Integer> requestOfHead = new HashMap<>();
        List<Used> used = new ArrayList<>();
        VirtioBlk blk = VirtioBlk.open("blk0", img, BlkOptions.DEFAULTS);
        try (BlkHarness h = new BlkHarness(blk, 256)) {
            blk.activate(h);
            for (int i = 0; i < requests; i++) {
                requestOfHead.put(h.submit(write(16L * i, pattern(length, i), length), true), i);
            }
            // the device is busy with them: close under its feet
            used.add(h.awaitUsed());
            blk.close();
            used.addAll(h.driver.usedAll());
        }
        byte[] file = Files.readAllBytes(img);
        for (Used u : used) {
            assertThat(status(u)).isEqualTo(BlkAbi.S_OK);
            int i = requestOfHead.get(u.id());
            assertThat(Arrays.copyOfRange(file, i * length, (i + 1) * length)).as("request " + i).isEqualTo(pattern(length, i));
        }
    }

    @Test
    void twoOpensOfOneImageConflict() throws IOException {
        Path img = image();
        try (DiskImage rw = DiskImage.open(img, false)) {
            assertThat(rw.sectors()).isEqualTo(SECTORS);
            assertThatThrownBy(() -> DiskImage.open(img, false)).isInstanceOf(FileSystemException.class)
                    .hasMessageContaining(img.toString()).hasMessageContaining("another VM or process");
            assertThatThrownBy(() -> DiskImage.open(img, true)).isInstanceOf(FileSystemException.class)
                    .hasMessageContaining(img.toString()).hasMessageContaining("another VM or process");
        }
        try (DiskImage ro1 = DiskImage.open(img, true); DiskImage ro2 = DiskImage.open(img, true)) {
            assertThat(ro1.readOnly()).isTrue();
            assertThat(ro2.sectors()).isEqualTo(SECTORS);
            assertThatThrownBy(() -> DiskImage.open(img, false)).isInstanceOf(FileSystemException.class)
                    .hasMessageContaining("another VM or process");
        }
        // closed: free again
        DiskImage.open(img, false).close();
    }

    @Test
    void badImagesAreClearErrorsNamingThePath() throws IOException {
        Path missing = dir.resolve("missing.img");
        assertThatThrownBy(() -> DiskImage.open(missing, true)).isInstanceOf(NoSuchFileException.class)
                .hasMessageContaining(missing.toString());
        assertThatThrownBy(() -> DiskImage.open(dir, true)).isInstanceOf(FileSystemException.class)
                .hasMessageContaining(dir.toString()).hasMessageContaining("directory");
        assertThatThrownBy(() -> DiskImage.open(dir, false)).isInstanceOf(FileSystemException.class)
                .hasMessageContaining(dir.toString()).hasMessageContaining("directory");
        Path ro = image();
        Files.setPosixFilePermissions(ro, PosixFilePermissions.fromString("r--r--r--"));
        assertThatThrownBy(() -> DiskImage.open(ro, false)).isInstanceOf(AccessDeniedException.class)
                .hasMessageContaining(ro.toString()).hasMessageContaining("read-only");
        try (DiskImage image = DiskImage.open(ro, true)) {
            assertThat(image.size()).isEqualTo(SECTORS * 512L);
        }
        assertThatThrownBy(() -> DiskImage.open(Path.of("/dev/null"), true)).isInstanceOf(FileSystemException.class)
                .hasMessageContaining("/dev/null").hasMessageContaining("neither a regular file nor a block device");
    }

    @Test
    void aReadPastTheEndOfAShrunkImageIsAnIoError() throws IOException {
        Path img = image();
        try (VirtioBlk blk = VirtioBlk.open("blk0", img, BlkOptions.DEFAULTS); BlkHarness h = new BlkHarness(blk, 16)) {
            blk.activate(h);
            try (FileChannel c = FileChannel.open(img, StandardOpenOption.WRITE)) {
                c.truncate(1024);
            }
            BlkHarness.RawUsed shortRead = h.callRaw(read(1, 1024));
            assertThat(shortRead.lastByte()).isEqualTo(BlkAbi.S_IOERR);
            assertThat(shortRead.length()).as("the bytes read, and the status").isEqualTo(512 + 1);
            assertThat(h.fatals).hasSize(1).first().asString().contains(img.toString());
            assertThat(status(h.call(read(0, 512)))).isEqualTo(BlkAbi.S_OK);
            assertThat(h.resets).isEmpty();
        }
    }

    @Test
    void aBrokenRingNeedsAReset() throws IOException, InterruptedException {
        Path img = image();
        try (VirtioBlk blk = VirtioBlk.open("blk0", img, BlkOptions.DEFAULTS); BlkHarness h = new BlkHarness(blk, 16)) {
            blk.activate(h);
            assertThat(status(h.call(read(0, 512)))).isEqualTo(BlkAbi.S_OK);
            h.driver.setAvailIdx(h.driver.availIdx() + 100);
            h.queueNotifier(0).signal();
            assertThat(h.resetWithin(20_000)).isTrue();
            assertThat(h.resets).hasSize(1).first().asString().contains("available index");
            // after the transport's reset the device serves again
            blk.reset();
            h.driver.queue().reset();
            try (BlkHarness fresh = new BlkHarness(blk, 16)) {
                blk.activate(fresh);
                assertThat(status(fresh.call(read(0, 512)))).isEqualTo(BlkAbi.S_OK);
            }
        }
    }

    @Test
    void aQuiescedDeviceServesNothingUntilResumed() throws IOException, InterruptedException {
        Path img = image();
        byte[] data = pattern(512, 9);
        try (VirtioBlk blk = VirtioBlk.open("blk0", img, BlkOptions.DEFAULTS); BlkHarness h = new BlkHarness(blk, 16)) {
            blk.activate(h);
            blk.quiesce();
            h.driver.usedAll();
            while (h.interruptWithin(0)) {
                // drop interrupts from before the pause
            }
            h.submit(write(3, data, 512), false);
            assertThat(h.interruptWithin(300)).as("served while paused").isFalse();
            assertThat(h.driver.usedIdx()).isZero();
            blk.resume();
            assertThat(status(h.awaitUsed())).isEqualTo(BlkAbi.S_OK);
            Used r = h.call(read(3, 512));
            assertThat(data(r)).isEqualTo(data);
        }
    }

    @Test
    void nothingLeftAfter200OpenCloseCycles() throws IOException {
        Path img = image();
        for (int i = 0; i < 3; i++) {
            cycle(img, i); // warm up: classes, native bindings, the JDK's own threads
        }
        HostResources before = HostResources.now();
        for (int i = 0; i < 200; i++) {
            cycle(img, i);
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    private static void cycle(Path img, int i) throws IOException {
        try (VirtioBlk blk = VirtioBlk.open("blk0", img, BlkOptions.DEFAULTS); BlkHarness h = new BlkHarness(blk, 16)) {
            blk.activate(h);
            h.submit(write(i % SECTORS, pattern(512, i), 512), false);
            if (i % 2 == 0) {
                assertThat(status(h.awaitUsed())).isEqualTo(BlkAbi.S_OK);
            }
        }
    }
}
