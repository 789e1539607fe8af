package dev.kindling.devices.virtio.console;

import static dev.kindling.devices.virtio.mmio.MmioDriver.awaitUsed;
import static dev.kindling.devices.virtio.mmio.MmioDriver.kick;
import static dev.kindling.devices.virtio.mmio.MmioDriver.restore;
import static dev.kindling.devices.virtio.mmio.MmioDriver.snapshot;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.readable;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;
import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.FakeDeviceContext;
import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.mmio.MmioDriver;
import dev.kindling.devices.virtio.mmio.VirtioMmioTransport;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import java.io.ByteArrayOutputStream;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Host input the guest had not received when the console was snapshotted reaches the restored guest. */
class VirtioConsoleSnapshotTest {
    private static final long BASE = 0xd000_0000L;
    private static final long FEATURES = VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX;

    @Test
    void pendingInputAndTheTransmitQueueGoOnAfterTheRestore() throws Exception {
        FakeDeviceContext ctx = new FakeDeviceContext();
        FakeDeviceContext ctx2 = new FakeDeviceContext(ctx);
        ByteArrayOutputStream out1 = new ByteArrayOutputStream();
        ByteArrayOutputStream out2 = new ByteArrayOutputStream();
        VirtioConsole console = new VirtioConsole("hvc0", out1);
        VirtioMmioTransport t = new VirtioMmioTransport(console, ctx, BASE);
        VirtioConsole console2 = new VirtioConsole("hvc0", out2);
        VirtioMmioTransport t2 = new VirtioMmioTransport(console2, ctx2, BASE);
        try {
            VirtqueueDriver rx = VirtqueueDriver.on(ctx.memory(), 0x10_0000, 1 << 20, 16, FEATURES);
            VirtqueueDriver tx = rx.sibling(16);
            new MmioDriver(t).bringUp(FEATURES, List.of(rx, tx));
            tx.add(List.of(readable("before ")));
            kick(ctx, 1);
            awaitUsed(tx);
            assertThat(console.enqueueInput("typed ahead".getBytes(UTF_8))).isTrue(); // no rx buffers yet
            Thread.sleep(20);

            byte[] state = snapshot(t);
            t.close();
            assertThat(console2.enqueueInput(" and more".getBytes(UTF_8))).isTrue(); // before the restored guest runs
            restore(t2, state);

            int head = rx.add(List.of(writable(64)));
            kick(ctx2, 0);
            Used u = awaitUsed(rx);
            assertThat(u.id()).isEqualTo(head);
            assertThat(new String(u.written(), UTF_8)).isEqualTo("typed ahead and more");
            tx.add(List.of(readable("after")));
            kick(ctx2, 1);
            awaitUsed(tx);
            assertThat(tx.usedIdx()).isEqualTo(2);
            assertThat(out1.toString(UTF_8)).isEqualTo("before ");
            assertThat(out2.toString(UTF_8)).isEqualTo("after");
        } finally {
            t.close();
            t2.close();
            assertThat(ctx.recordingThreads().alive()).isEmpty();
            assertThat(ctx2.recordingThreads().alive()).isEmpty();
            ctx2.close();
            ctx.close();
        }
    }
}
