package dev.kindling.devices.virtio.vsock;

import static dev.kindling.devices.virtio.mmio.MmioDriver.awaitUsed;
import static dev.kindling.devices.virtio.mmio.MmioDriver.kick;
import static dev.kindling.devices.virtio.mmio.MmioDriver.restore;
import static dev.kindling.devices.virtio.mmio.MmioDriver.snapshot;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.readable;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.FakeDeviceContext;
import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.mmio.MmioDriver;
import dev.kindling.devices.virtio.mmio.VirtioMmioTransport;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * vsock through its transport across a snapshot, as Firecracker does it: the restored device sends
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, its configuration has the new guest CID, the old host
 * connections are gone and the new host side's listeners take new guest connections.
 */
class VirtioVsockSnapshotTest {
    private static final long BASE = 0xd000_0000L;
    private static final long FEATURES = VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX | 1L << VsockHeader.F_STREAM;
    private static final int PORT = 5000;
    private static final Duration WAIT = Duration.ofSeconds(10);

    private static byte[] header(long srcCid, int srcPort, int op) {
        byte[] h = new byte[VsockHeader.SIZE];
        VsockHeader.write(MemorySegment.ofArray(h), srcCid, VirtioVsock.HOST_CID, srcPort, PORT, 0, VsockHeader.TYPE_STREAM, op,
                0, 64 * 1024, 0);
        return h;
    }

    /** The guest asks for a connection from {@code srcPort} and waits for the device's answer on rx. */
    private static MemorySegment connect(FakeDeviceContext on, VirtqueueDriver rx, VirtqueueDriver tx, long cid, int srcPort)
            throws InterruptedException {
        tx.add(List.of(readable(header(cid, srcPort, VsockHeader.OP_REQUEST))));
        kick(on, 1);
        Used u = awaitUsed(rx);
        rx.add(List.of(writable(4096)));
        kick(on, 0);
        assertThat(u.length()).isGreaterThanOrEqualTo(VsockHeader.SIZE);
        return MemorySegment.ofArray(u.written());
    }

    @Test
    void theRestoredDeviceResetsTheTransportWithTheNewCidAndItsListenersWork() throws Exception {
        FakeDeviceContext ctx = new FakeDeviceContext();
        FakeDeviceContext ctx2 = new FakeDeviceContext(ctx);
        Vsock host = Vsock.create("vsock0", 3, null);
        Vsock host2 = Vsock.create("vsock0", 7, null);
        VirtioMmioTransport t = new VirtioMmioTransport(host.device(), ctx, BASE);
        VirtioMmioTransport t2 = new VirtioMmioTransport(host2.device(), ctx2, BASE);
        try (VsockListener listener = host.listen(PORT); VsockListener listener2 = host2.listen(PORT)) {
            VirtqueueDriver rx = VirtqueueDriver.on(ctx.memory(), 0x10_0000, 4 << 20, 64, FEATURES);
            VirtqueueDriver tx = rx.sibling(64);
            VirtqueueDriver ev = rx.sibling(64);
            for (int i = 0; i < 8; i++) {
                rx.add(List.of(writable(4096)));
            }
            int[] events = {ev.add(List.of(writable(8))), ev.add(List.of(writable(8)))};
            MmioDriver d = new MmioDriver(t);
            d.bringUp(FEATURES, List.of(rx, tx, ev));
            assertThat(d.r(0x100)).isEqualTo(3);

            MemorySegment answer = connect(ctx, rx, tx, 3, 1234);
            assertThat(VsockHeader.op(answer)).isEqualTo(VsockHeader.OP_RESPONSE);
            assertThat(VsockHeader.dstCid(answer)).isEqualTo(3);
            VsockConnection old = listener.accept(WAIT).orElseThrow();
            assertThat(host.device().connections()).isEqualTo(1);

            byte[] state = snapshot(t);
            t.close();
            host.close();
            InputStream oldIn = old.inputStream();
            assertThat(oldIn.read()).as("the old machine's host connection ends with it").isEqualTo(-1);
            old.close();
            assertThat(ev.usedIdx()).isZero();

            restore(t2, state);
            Used reset = awaitUsed(ev);
            assertThat(reset.id()).isIn(events[0], events[1]);
            assertThat(reset.length()).isEqualTo(VsockHeader.EVENT_SIZE);
            assertThat(ByteBuffer.wrap(reset.written()).order(ByteOrder.LITTLE_ENDIAN).getInt())
                    .isEqualTo(VsockHeader.EVENT_TRANSPORT_RESET);
            assertThat(ctx2.recordingIrq().awaitPulses(1, MmioDriver.WAIT_MS)).isTrue();
            MmioDriver d2 = new MmioDriver(t2);
            assertThat(d2.r(MmioDriver.STATUS_REG) & 4).as("DRIVER_OK").isEqualTo(4);
            assertThat(d2.r(0x100)).as("guest_cid, low word: the new CID").isEqualTo(7);
            assertThat(d2.r(0x104)).isZero();
            assertThat(host2.device().connections()).isZero();

            // the guest re-read its CID and connects again: the restored host side's listener takes it
            MemorySegment again = connect(ctx2, rx, tx, 7, 1235);
            assertThat(VsockHeader.op(again)).isEqualTo(VsockHeader.OP_RESPONSE);
            assertThat(VsockHeader.dstCid(again)).isEqualTo(7);
            assertThat(VsockHeader.dstPort(again)).isEqualTo(1235);
            VsockConnection fresh = listener2.accept(WAIT).orElseThrow();
            assertThat(fresh.peerPort()).isEqualTo(1235);
            fresh.close();
            assertThat(ev.usedIdx()).as("one reset event only").isEqualTo(1);
        } finally {
            t.close();
            t2.close();
            host.close();
            host2.close();
            assertThat(ctx.recordingThreads().alive()).isEmpty();
            assertThat(ctx2.recordingThreads().alive()).isEmpty();
            ctx2.close();
            ctx.close();
        }
    }
}
