package dev.kindling.devices.virtio.rng;

import static dev.kindling.devices.virtio.mmio.MmioDriver.awaitUsed;
import static dev.kindling.devices.virtio.mmio.MmioDriver.kick;
import static dev.kindling.devices.virtio.mmio.MmioDriver.restore;
import static dev.kindling.devices.virtio.mmio.MmioDriver.snapshot;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.FakeDeviceContext;
import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.mmio.MmioDriver;
import dev.kindling.devices.virtio.mmio.VirtioMmioTransport;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import java.security.SecureRandom;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** A rate-limited virtio-rng paused while a request waits for tokens: the snapshot loses no request. */
class VirtioRngSnapshotTest {
    private static final long BASE = 0xd000_0000L;
    private static final long FEATURES = VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX;

    @Test
    void aRequestWaitingForTokensIsInTheRingWhenPausedAndServedAfterTheRestore() throws Exception {
        FakeDeviceContext ctx = new FakeDeviceContext();
        FakeDeviceContext ctx2 = new FakeDeviceContext(ctx);
        // a clock that never moves, counting its reads: the bucket never refills, and each read is
        // the device thread asking it for a request
        AtomicInteger reads = new AtomicInteger();
        VirtioRng.RateLimit limit = new VirtioRng.RateLimit(1, 16);
        VirtioMmioTransport t = new VirtioMmioTransport(
                new VirtioRng("rng0", new SecureRandom(), limit, () -> {
                    reads.incrementAndGet();
                    return 1_000L;
                }), ctx, BASE);
        VirtioMmioTransport t2 = new VirtioMmioTransport(new VirtioRng("rng0", new SecureRandom(), limit, () -> 5_000L), ctx2, BASE);
        try {
            VirtqueueDriver q = VirtqueueDriver.on(ctx.memory(), 0x10_0000, 1 << 20, 16, FEATURES);
            new MmioDriver(t).bringUp(FEATURES, List.of(q));
            q.add(List.of(writable(16)));
            kick(ctx, 0);
            assertThat(awaitUsed(q).length()).isEqualTo(16); // the whole burst
            int before = reads.get();
            int waiting = q.add(List.of(writable(16)));
            kick(ctx, 0);
            long end = System.nanoTime() + MmioDriver.WAIT_MS * 1_000_000;
            while (reads.get() == before && System.nanoTime() < end) {
                Thread.sleep(1);
            }
            assertThat(reads.get()).as("the device thread took the request and asked the bucket").isGreaterThan(before);
            Thread.sleep(20);
            assertThat(q.used()).as("no tokens: the request waits").isEmpty();

            byte[] state = snapshot(t); // would refuse a request taken and not completed
            t.close();
            restore(t2, state); // a fresh bucket: the burst is there again
            Used u = awaitUsed(q);
            assertThat(u.id()).isEqualTo(waiting);
            assertThat(u.length()).isEqualTo(16);
            assertThat(q.usedIdx()).isEqualTo(2);
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
