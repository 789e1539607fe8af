package dev.kindling.devices.virtio.blk;

import static dev.kindling.devices.virtio.mmio.MmioDriver.awaitUsed;
import static dev.kindling.devices.virtio.mmio.MmioDriver.kick;
import static dev.kindling.devices.virtio.mmio.MmioDriver.restore;
import static dev.kindling.devices.virtio.mmio.MmioDriver.snapshot;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.devices.virtio.FakeDeviceContext;
import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.mmio.MmioDriver;
import dev.kindling.devices.virtio.mmio.VirtioMmioTransport;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Buffer;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import dev.kindling.snapshot.SnapshotException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** virtio-blk through its transport: written before the snapshot, read back by the restored device. */
class VirtioBlkSnapshotTest {
    private static final long BASE = 0xd000_0000L;
    private static final long ACCEPT = VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX
            | VirtioFeatures.RING_INDIRECT_DESC | 1L << BlkAbi.F_FLUSH | 1L << BlkAbi.F_SEG_MAX | 1L << BlkAbi.F_BLK_SIZE;

    @TempDir
    Path dir;
    private final FakeDeviceContext ctx = new FakeDeviceContext();
    private final FakeDeviceContext ctx2 = new FakeDeviceContext(ctx);
    private VirtioMmioTransport t;
    private VirtioMmioTransport t2;

    @AfterEach
    void tearDown() {
        if (t != null) {
            t.close();
        }
        if (t2 != null) {
            t2.close();
        }
        assertThat(ctx.recordingThreads().alive()).isEmpty();
        assertThat(ctx2.recordingThreads().alive()).isEmpty();
        assertThat(ctx.fatals()).isEmpty();
        assertThat(ctx2.fatals()).isEmpty();
        ctx2.close();
        ctx.close();
    }

    private Path disk(String name, int sectors) throws Exception {
        Path p = dir.resolve(name);
        Files.write(p, new byte[sectors * 512]);
        return p;
    }

    private static Used call(FakeDeviceContext on, VirtqueueDriver q, List<Buffer> request) throws InterruptedException {
        int head = q.add(request);
        kick(on, 0);
        Used u = awaitUsed(q);
        assertThat(u.id()).isEqualTo(head);
        return u;
    }

    private byte[] runAndSnapshot(Path image, VirtqueueDriver q, byte[] data) throws Exception {
        t = new VirtioMmioTransport(VirtioBlk.open("blk0", image, BlkOptions.defaults()), ctx, BASE);
        new MmioDriver(t).bringUp(ACCEPT, List.of(q));
        assertThat(BlkHarness.status(call(ctx, q, BlkHarness.write(3, data, 512)))).isEqualTo(BlkAbi.S_OK);
        assertThat(BlkHarness.status(call(ctx, q, BlkHarness.simple(BlkAbi.T_FLUSH)))).isEqualTo(BlkAbi.S_OK);
        byte[] state = snapshot(t);
        t.close(); // closes the image too; the caller keeps the file
        return state;
    }

    @Test
    void theRestoredDiskReadsWhatWasWrittenBeforeTheSnapshot() throws Exception {
        Path image = disk("disk.img", 64);
        VirtqueueDriver q = VirtqueueDriver.on(ctx.memory(), 0x10_0000, 4 << 20, 32, ACCEPT);
        byte[] data = new byte[512];
        Arrays.fill(data, (byte) 0x5a);
        byte[] state = runAndSnapshot(image, q, data);

        t2 = new VirtioMmioTransport(VirtioBlk.open("blk0", image, BlkOptions.defaults()), ctx2, BASE);
        restore(t2, state);
        Used u = call(ctx2, q, BlkHarness.read(3, 512));
        assertThat(BlkHarness.status(u)).isEqualTo(BlkAbi.S_OK);
        assertThat(BlkHarness.data(u)).isEqualTo(data);
        assertThat(q.usedIdx()).isEqualTo(3);
        assertThat(new MmioDriver(t2).r(0x100)).as("capacity, low word").isEqualTo(64);
    }

    @Test
    void aDiskOfAnotherSizeIsRefusedWithNothingStarted() throws Exception {
        VirtqueueDriver q = VirtqueueDriver.on(ctx.memory(), 0x10_0000, 4 << 20, 32, ACCEPT);
        byte[] state = runAndSnapshot(disk("disk.img", 64), q, new byte[512]);

        t2 = new VirtioMmioTransport(VirtioBlk.open("blk0", disk("other.img", 128), BlkOptions.defaults()), ctx2, BASE);
        assertThatThrownBy(() -> restore(t2, state)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("128 sectors").hasMessageContaining("64 sectors");
        assertThat(t2.status()).isZero();
        assertThat(ctx2.recordingThreads().made()).isEmpty();
    }
}
