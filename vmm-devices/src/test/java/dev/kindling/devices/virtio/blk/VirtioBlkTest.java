package dev.kindling.devices.virtio.blk;

import static dev.kindling.devices.virtio.blk.BlkHarness.data;
import static dev.kindling.devices.virtio.blk.BlkHarness.header;
import static dev.kindling.devices.virtio.blk.BlkHarness.ranges;
import static dev.kindling.devices.virtio.blk.BlkHarness.read;
import static dev.kindling.devices.virtio.blk.BlkHarness.simple;
import static dev.kindling.devices.virtio.blk.BlkHarness.status;
import static dev.kindling.devices.virtio.blk.BlkHarness.write;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.readable;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.VirtioIds;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Buffer;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The device through its I/O thread: the mock driver's chains in, the image file and the used ring out. */
class VirtioBlkTest {
    private static final int SECTORS = 256;

    @TempDir
    Path dir;

    private Path image(long bytes) throws IOException {
        Path p = dir.resolve("disk.img");
        Files.write(p, new byte[(int) bytes]);
        return p;
    }

    private static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void multiSegmentWritesAndReadsRoundTrip() throws IOException {
        Path img = image(SECTORS * 512L);
        byte[] data = pattern(3 * 512 + 4096, 1);
        try (VirtioBlk blk = VirtioBlk.open("blk0", img, BlkOptions.DEFAULTS); BlkHarness h = new BlkHarness(blk, 64)) {
            blk.activate(h);
            Used w = h.call(write(10, data, 512, 1024, 4096));
            assertThat(w.length()).isEqualTo(1);
            assertThat(status(w)).isEqualTo(BlkAbi.S_OK);

            Used r = h.call(read(10, 2048, 512, 3072), true);
            assertThat(status(r)).isEqualTo(BlkAbi.S_OK);
            assertThat(r.length()).isEqualTo(data.length + 1);
            assertThat(data(r)).isEqualTo(data);
        }
        byte[] file = Files.readAllBytes(img);
        assertThat(Arrays.copyOfRange(file, 10 * 512, 10 * 512 + data.length)).isEqualTo(data);
        assertThat(file.length).isEqualTo(SECTORS * 512);
    }

    @Test
    void flushAndGetId() throws IOException {
        Path img = image(SECTORS * 512L);
        try (VirtioBlk blk = VirtioBlk.open("blk0", img, BlkOptions.DEFAULTS.withSerial("kindling-serial-42"));
                BlkHarness h = new BlkHarness(blk, 16)) {
            blk.activate(h);
            assertThat(status(h.call(write(0, pattern(512, 2), 512)))).isEqualTo(BlkAbi.S_OK);
            Used f = h.call(simple(BlkAbi.T_FLUSH));
            assertThat(f.length()).isEqualTo(1);
            assertThat(status(f)).isEqualTo(BlkAbi.S_OK);

            Used id = h.call(List.of(readable(header(BlkAbi.T_GET_ID, 0)), writable(20), writable(1)));
            assertThat(id.length()).isEqualTo(21);
            assertThat(status(id)).isEqualTo(BlkAbi.S_OK);
            byte[] expected = Arrays.copyOf("kindling-serial-42".getBytes(StandardCharsets.US_ASCII), 20);
            assertThat(data(id)).isEqualTo(expected);
        }
    }

    @Test
    void discardAndWriteZeroesReadBackAsZeros() throws IOException {
        zeroRanges(dir);
    }

    /** tmpfs has no ZERO_RANGE: write-zeroes falls back to writing zeros. */
    @Test
    void writeZeroesWhereTheFileSystemCannotZeroARange() throws IOException {
        Path shm = Path.of("/dev/shm");
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.isDirectory(shm) && Files.isWritable(shm), "no /dev/shm");
        Path d = Files.createTempDirectory(shm, "kindling-blk");
        try {
            zeroRanges(d);
        } finally {
            try (var s = Files.list(d)) {
                for (Path p : s.toList()) {
                    Files.delete(p);
                }
            }
            Files.delete(d);
        }
    }

    private static void zeroRanges(Path d) throws IOException {
        Path img = d.resolve("zero.img");
        byte[] full = pattern(64 * 512, 3);
        Files.write(img, full);
        try (VirtioBlk blk = VirtioBlk.open("blk0", img, BlkOptions.DEFAULTS); BlkHarness h = new BlkHarness(blk, 16)) {
            assertThat(blk.features() & (1L << BlkAbi.F_DISCARD)).isNotZero();
            assertThat(blk.features() & (1L << BlkAbi.F_WRITE_ZEROES)).isNotZero();
            blk.activate(h);
            assertThat(status(h.call(simple(BlkAbi.T_DISCARD, ranges(8, 8, 0))))).isEqualTo(BlkAbi.S_OK);
            assertThat(status(h.call(simple(BlkAbi.T_WRITE_ZEROES, ranges(16, 8, 0, 40, 4, 0))))).isEqualTo(BlkAbi.S_OK);
            assertThat(status(h.call(simple(BlkAbi.T_WRITE_ZEROES, ranges(24, 8, BlkAbi.WRITE_ZEROES_FLAG_UNMAP)))))
                    .isEqualTo(BlkAbi.S_OK);
            Used r = h.call(read(0, 64 * 512));
            byte[] expected = full.clone();
            Arrays.fill(expected, 8 * 512, 32 * 512, (byte) 0);
            Arrays.fill(expected, 40 * 512, 44 * 512, (byte) 0);
            assertThat(data(r)).isEqualTo(expected);
            assertThat(Files.readAllBytes(img)).isEqualTo(expected);
        }
    }

    @Test
    void readOnlyDiskRefusesChanges() throws IOException {
        Path img = image(SECTORS * 512L);
        byte[] before = pattern(SECTORS * 512, 4);
        Files.write(img, before);
        try (VirtioBlk blk = VirtioBlk.open("blk0", img, BlkOptions.DEFAULTS.withReadOnly(true)); BlkHarness h = new BlkHarness(blk, 16)) {
            assertThat(blk.features() & (1L << BlkAbi.F_RO)).isNotZero();
            assertThat(blk.features() & ((1L << BlkAbi.F_DISCARD) | (1L << BlkAbi.F_WRITE_ZEROES))).isZero();
            blk.activate(h);
            assertThat(status(h.call(write(0, pattern(512, 5), 512)))).isEqualTo(BlkAbi.S_IOERR);
            assertThat(status(h.call(simple(BlkAbi.T_DISCARD, ranges(0, 8, 0))))).isEqualTo(BlkAbi.S_UNSUPP);
            Used r = h.call(read(0, 512));
            assertThat(status(r)).isEqualTo(BlkAbi.S_OK);
            assertThat(data(r)).isEqualTo(Arrays.copyOf(before, 512));
        }
        assertThat(Files.readAllBytes(img)).isEqualTo(before);
    }

    @Test
    void configSpaceAndFeatures() throws IOException {
        Path img = image(SECTORS * 512L + 100);
        try (VirtioBlk blk = VirtioBlk.open("blk0", img, BlkOptions.DEFAULTS)) {
            assertThat(blk.deviceType()).isEqualTo(VirtioIds.BLOCK);
            assertThat(blk.queueCount()).isEqualTo(1);
            assertThat(blk.queueMaxSize(0)).isEqualTo(VirtioBlk.QUEUE_SIZE);
            assertThat(blk.features()).isEqualTo(VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX
                    | VirtioFeatures.RING_INDIRECT_DESC | (1L << BlkAbi.F_SEG_MAX) | (1L << BlkAbi.F_BLK_SIZE)
                    | (1L << BlkAbi.F_FLUSH) | (1L << BlkAbi.F_DISCARD) | (1L << BlkAbi.F_WRITE_ZEROES));
            // the partial sector at the end is not part of the disk
            assertThat(blk.readConfig((int) BlkAbi.configOffset("capacity"), 8)).isEqualTo(SECTORS);
            assertThat(blk.readConfig((int) BlkAbi.configOffset("capacity"), 4)).isEqualTo(SECTORS);
            assertThat(blk.readConfig((int) BlkAbi.configOffset("capacity") + 4, 4)).isZero();
            assertThat(blk.readConfig((int) BlkAbi.configOffset("blk_size"), 4)).isEqualTo(512);
            assertThat(blk.readConfig((int) BlkAbi.configOffset("seg_max"), 4)).isEqualTo(BlkConfig.SEG_MAX);
            assertThat(blk.readConfig((int) BlkAbi.configOffset("max_discard_seg"), 4)).isEqualTo(BlkConfig.MAX_RANGES);
            assertThat(blk.readConfig((int) BlkAbi.configOffset("max_write_zeroes_sectors"), 4))
                    .isEqualTo(BlkConfig.MAX_RANGE_SECTORS);
            assertThat(blk.readConfig((int) BlkAbi.configOffset("discard_sector_alignment"), 4)).isEqualTo(8);
            assertThat(blk.readConfig((int) BlkAbi.configOffset("write_zeroes_may_unmap"), 1)).isEqualTo(1);
            assertThat(blk.configSize()).isEqualTo(60);
            blk.writeConfig(0, 8, 12345);
            assertThat(blk.readConfig(0, 8)).isEqualTo(SECTORS);
        }
    }

    /** A malformed request, what it must get (status, or -1 for none), and the used length. */
    private record Hostile(String what, List<Buffer> chain, int status, int usedLength) {}

    private static List<Hostile> hostile() {
        List<Buffer> tooMany = new ArrayList<>();
        tooMany.add(readable(header(BlkAbi.T_IN, 0)));
        for (int i = 0; i <= BlkConfig.SEG_MAX; i++) {
            tooMany.add(writable(512));
        }
        tooMany.add(writable(1));
        return List.of(
                new Hostile("short header", List.of(readable(new byte[12]), writable(1)), BlkAbi.S_IOERR, 1),
                new Hostile("header split oddly and too short", List.of(readable(new byte[7]), readable(new byte[8]), writable(1)),
                        BlkAbi.S_IOERR, 1),
                new Hostile("no status byte", List.of(readable(header(BlkAbi.T_IN, 0)), readable(new byte[512])), -1, 0),
                new Hostile("read into readable buffers", List.of(readable(header(BlkAbi.T_IN, 0)), readable(new byte[512]),
                        writable(1)), BlkAbi.S_IOERR, 1),
                new Hostile("write from writable buffers", List.of(readable(header(BlkAbi.T_OUT, 0)), writable(512), writable(1)),
                        BlkAbi.S_IOERR, 1),
                new Hostile("data not whole sectors", read(0, 500), BlkAbi.S_IOERR, 1),
                new Hostile("past the capacity", read(SECTORS - 1, 1024), BlkAbi.S_IOERR, 1),
                new Hostile("sector overflows", write(-1L, new byte[512], 512), BlkAbi.S_IOERR, 1),
                // more than SEG_MAX data buffers plus header and status is longer than the queue: the queue
                // refuses the chain before the parser sees it (BlkRequestTest covers the parser's limit)
                new Hostile("too many segments", tooMany, -1, 0),
                new Hostile("unknown type", simple(99), BlkAbi.S_UNSUPP, 1),
                new Hostile("discard with the unmap flag", simple(BlkAbi.T_DISCARD, ranges(0, 8, 1)), BlkAbi.S_UNSUPP, 1),
                new Hostile("discard past the capacity", simple(BlkAbi.T_DISCARD, ranges(SECTORS - 4, 8, 0)), BlkAbi.S_IOERR, 1));
    }

    @Test
    void everyMalformedRequestFailsAloneAndTheNextWorks() throws IOException {
        Path img = image(SECTORS * 512L);
        byte[] data = pattern(512, 6);
        try (VirtioBlk blk = VirtioBlk.open("blk0", img, BlkOptions.DEFAULTS); BlkHarness h = new BlkHarness(blk, 256)) {
            blk.activate(h);
            assertThat(status(h.call(write(7, data, 512)))).isEqualTo(BlkAbi.S_OK);
            for (Hostile bad : hostile()) {
                BlkHarness.RawUsed u = h.callRaw(bad.chain());
                assertThat(u.length()).as(bad.what()).isEqualTo(bad.usedLength());
                if (bad.status() >= 0) {
                    assertThat(u.lastByte()).as(bad.what()).isEqualTo(bad.status());
                }
                Used ok = h.call(read(7, 512));
                assertThat(status(ok)).as("after " + bad.what()).isEqualTo(BlkAbi.S_OK);
                assertThat(data(ok)).as("after " + bad.what()).isEqualTo(data);
            }
            assertThat(h.resets).isEmpty();
        }
        assertThat(Arrays.copyOfRange(Files.readAllBytes(img), 7 * 512, 8 * 512)).isEqualTo(data);
    }
}
