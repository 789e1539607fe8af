package dev.kindling.devices.virtio.mmio;

import static dev.kindling.devices.virtio.mmio.MmioDriver.awaitUsed;
import static dev.kindling.devices.virtio.mmio.MmioDriver.kick;
import static dev.kindling.devices.virtio.mmio.MmioDriver.restore;
import static dev.kindling.devices.virtio.mmio.MmioDriver.snapshot;
import static dev.kindling.devices.virtio.mmio.VirtioMmioTransport.*;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.devices.virtio.FakeDeviceContext;
import dev.kindling.devices.virtio.VirtioContext;
import dev.kindling.devices.virtio.VirtioDevice;
import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.VirtioWorker;
import dev.kindling.devices.virtio.queue.DescriptorChain;
import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import dev.kindling.devices.virtio.queue.VirtqueueException;
import dev.kindling.devices.virtio.rng.VirtioRng;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Snapshots of a virtio-mmio transport without a VM: the guest's driver (the test) brings a device up
 * through the registers and makes requests, the machine pauses and saves it, then a fresh transport
 * and device over the same guest memory (the snapshot's memory) are restored, and the driver goes on
 * as if nothing happened.
 */
class VirtioMmioSnapshotTest {
    private static final long BASE = 0xd000_0000L;
    private static final int SIZE = 64;
    private static final long ALL = VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX | VirtioFeatures.RING_INDIRECT_DESC;

    private final FakeDeviceContext ctx = new FakeDeviceContext();
    /** The restored machine: the same guest memory. */
    private final FakeDeviceContext ctx2 = new FakeDeviceContext(ctx);
    private final VirtioMmioTransport t = new VirtioMmioTransport(new VirtioRng("rng0"), ctx, BASE);
    private final MmioDriver driver = new MmioDriver(t);
    private final List<VirtioMmioTransport> restored = new ArrayList<>();
    private final VirtqueueDriver q = VirtqueueDriver.on(ctx.memory(), 0x10_0000, 1 << 20, SIZE, ALL);

    @AfterEach
    void tearDown() {
        t.close();
        restored.forEach(VirtioMmioTransport::close);
        assertThat(ctx.recordingThreads().alive()).isEmpty();
        assertThat(ctx2.recordingThreads().alive()).isEmpty();
        assertThat(ctx.fatals()).isEmpty();
        assertThat(ctx2.fatals()).isEmpty();
        ctx2.close();
        ctx.close();
    }

    private VirtioMmioTransport fresh() {
        return fresh(new VirtioRng("rng0"));
    }

    private VirtioMmioTransport fresh(VirtioDevice device) {
        VirtioMmioTransport t2 = new VirtioMmioTransport(device, ctx2, BASE);
        restored.add(t2);
        return t2;
    }

    private int request(FakeDeviceContext on, int length) throws InterruptedException {
        int head = q.add(List.of(writable(length)));
        kick(on, 0);
        Used u = awaitUsed(q);
        assertThat(u.id()).isEqualTo(head);
        assertThat(u.length()).isEqualTo(length);
        return head;
    }

    /** The transport's own block, as the machine's StateWriter.putState writes it inside its own. */
    private static byte[] inner(VirtioMmioTransport t) {
        t.quiesce();
        StateWriter w = new StateWriter();
        t.saveState(w);
        return w.toByteArray();
    }

    private static void restoreInner(VirtioMmioTransport t, byte[] state) {
        t.restoreState(new StateReader(state, "virtio0"));
    }

    @Test
    void restoredRngGoesOnAtTheNextUsedIndexWithTheSameRegisters() throws Exception {
        driver.bringUp(ALL, List.of(q));
        for (int i = 0; i < 3; i++) {
            request(ctx, 16 + i);
        }
        assertThat(ctx.recordingIrq().awaitPulses(1, MmioDriver.WAIT_MS)).isTrue();
        assertThat(driver.r(INTERRUPT_STATUS)).as("not acknowledged: pending in the snapshot").isEqualTo(INT_VRING);
        driver.w(QUEUE_SEL, 0);
        Map<String, Integer> before = driver.registers(1, 0);

        byte[] state = snapshot(t);
        t.close(); // the old machine is gone; its memory is the snapshot's
        VirtioMmioTransport t2 = fresh();
        restore(t2, state);

        assertThat(new MmioDriver(t2).registers(1, 0)).isEqualTo(before);
        assertThat(t2.status()).isEqualTo(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        assertThat(ctx2.recordingIrq().pulses()).as("the pending interrupt, raised again").isEqualTo(1);
        assertThat(q.usedIdx()).isEqualTo(3);

        q.setUsedEvent(3); // the driver wants an interrupt once the device used entry 3
        request(ctx2, 40);
        assertThat(q.usedIdx()).as("the fourth used entry, after the snapshot's three").isEqualTo(4);
        assertThat(ctx2.recordingIrq().awaitPulses(2, MmioDriver.WAIT_MS)).isTrue();
        assertThat(ctx2.ioEvents()).hasSize(1);
        assertThat(ctx2.ioEvents().getFirst().address()).isEqualTo(BASE + QUEUE_NOTIFY);
    }

    @Test
    void aRequestMadeAvailableWhileQuiescedIsServedByTheRestoredDevice() throws Exception {
        driver.bringUp(ALL, List.of(q));
        request(ctx, 8);
        driver.w(INTERRUPT_ACK, INT_VRING);
        t.quiesce();
        q.setUsedEvent(1);
        int head = q.add(List.of(writable(24)));
        kick(ctx, 0); // the vCPU's last notify before it parked: the device is paused
        byte[] state = snapshot(t);
        t.close();
        assertThat(q.usedIdx()).isEqualTo(1);

        VirtioMmioTransport t2 = fresh();
        restore(t2, state);
        Used u = awaitUsed(q); // no notify: the device looks at its rings when it starts
        assertThat(u.id()).isEqualTo(head);
        assertThat(u.length()).isEqualTo(24);
        assertThat(q.usedIdx()).isEqualTo(2);
        assertThat(new MmioDriver(t2).r(INTERRUPT_STATUS)).isEqualTo(INT_VRING);
    }

    @Test
    void noInterruptIsRaisedWhenNoneWasPending() throws Exception {
        driver.bringUp(ALL, List.of(q));
        request(ctx, 8);
        driver.w(INTERRUPT_ACK, INT_VRING | INT_CONFIG);
        byte[] state = snapshot(t);
        t.close();
        VirtioMmioTransport t2 = fresh();
        restore(t2, state);
        assertThat(new MmioDriver(t2).r(INTERRUPT_STATUS)).isZero();
        assertThat(ctx2.recordingIrq().pulses()).isZero();
        request(ctx2, 8);
    }

    @Test
    void aSnapshotBeforeDriverOkStartsNothingAndTheDriverFinishesTheProbe() throws Exception {
        driver.w(STATUS, 0);
        driver.addStatus(ACKNOWLEDGE);
        driver.addStatus(DRIVER);
        driver.w(DRIVER_FEATURES_SEL, 1);
        driver.w(DRIVER_FEATURES, 1); // VERSION_1
        driver.w(QUEUE_SEL, 0);
        driver.w(QUEUE_NUM, SIZE);
        driver.w(QUEUE_DESC_LOW, (int) q.descriptorTable());
        Map<String, Integer> before = driver.registers(1, 0);
        byte[] state = snapshot(t);
        t.close();

        VirtioMmioTransport t2 = fresh();
        restore(t2, state);
        MmioDriver d2 = new MmioDriver(t2);
        assertThat(d2.registers(1, 0)).isEqualTo(before);
        assertThat(ctx2.recordingThreads().made()).isEmpty();
        assertThat(ctx2.ioEvents()).isEmpty();
        // the driver goes on where it was: the rest of the features and the queue, then DRIVER_OK
        d2.w(DRIVER_FEATURES_SEL, 0);
        d2.w(DRIVER_FEATURES, (int) (ALL & 0xffffffffL));
        d2.addStatus(FEATURES_OK);
        d2.setUpQueue(0, q);
        d2.addStatus(DRIVER_OK);
        assertThat(t2.status()).isEqualTo(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        request(ctx2, 12);
    }

    @Test
    void aDeviceHoldingARequestAcrossThePauseCannotBeSaved() throws Exception {
        HoldingDevice holding = new HoldingDevice();
        VirtioMmioTransport h = new VirtioMmioTransport(holding, ctx, BASE + LENGTH);
        try {
            new MmioDriver(h).bringUp(ALL, List.of(q));
            q.add(List.of(writable(8)));
            kick(ctx, 0);
            long end = System.nanoTime() + MmioDriver.WAIT_MS * 1_000_000;
            while (holding.held.isEmpty() && System.nanoTime() < end) {
                Thread.sleep(1);
            }
            assertThat(holding.held).hasSize(1);
            assertThatThrownBy(() -> snapshot(h)).isInstanceOf(SnapshotException.class)
                    .hasMessageContaining("queue 0 has 1 requests taken and not completed");
        } finally {
            h.close();
        }
    }

    @Test
    void everyTruncationIsRefusedWithNothingStarted() throws Exception {
        driver.bringUp(ALL, List.of(q));
        request(ctx, 8);
        byte[] state = inner(t);
        t.close();
        VirtioMmioTransport t2 = fresh();
        for (int n = 0; n < state.length; n++) {
            byte[] cut = java.util.Arrays.copyOf(state, n);
            assertThatThrownBy(() -> restoreInner(t2, cut)).as("cut at " + n).isInstanceOf(SnapshotException.class);
            assertNothingStarted(t2);
        }
        byte[] longer = java.util.Arrays.copyOf(state, state.length + 1);
        assertThatThrownBy(() -> restoreInner(t2, longer)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("left over");
        assertNothingStarted(t2);
        // the same transport still takes the whole state, and serves
        restoreInner(t2, state);
        request(ctx2, 8);
    }

    private void assertNothingStarted(VirtioMmioTransport t2) {
        assertThat(t2.status()).isZero();
        assertThat(ctx2.recordingThreads().alive()).isEmpty();
        assertThat(ctx2.ioEvents()).allMatch(e -> e.closed());
        assertThat(ctx2.recordingIrq().pulses()).isZero();
    }

    // The layout for one queue, as saveState writes it (the test checks the total):
    private static final int VERSION_AT = 0, TYPE_AT = 4, STATUS_AT = 24, FEATURES_AT = 37, INTERRUPTS_AT = 49,
            QUEUE_SIZE_AT = 61, DESC_AT = 65, READY_AT = 89, NEXT_AVAIL_AT = 90, NEXT_USED_AT = 92, DEVICE_BLOCK_AT = 96,
            TOTAL = 100;

    @Test
    void corruptedValuesAreRefusedWithNothingStarted() throws Exception {
        driver.bringUp(ALL, List.of(q));
        request(ctx, 8);
        request(ctx, 8);
        byte[] state = inner(t);
        t.close();
        assertThat(state).hasSize(TOTAL);
        ByteBuffer b = ByteBuffer.wrap(state).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(b.getInt(STATUS_AT)).isEqualTo(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        assertThat(b.getInt(QUEUE_SIZE_AT)).isEqualTo(SIZE);
        assertThat(b.getLong(DESC_AT)).isEqualTo(q.descriptorTable());
        assertThat(b.getShort(NEXT_USED_AT)).isEqualTo((short) 2);
        VirtioMmioTransport t2 = fresh();

        refused(t2, state, "layout version", s -> s.putInt(VERSION_AT, 2));
        refused(t2, state, "another device", s -> s.putInt(TYPE_AT, 2));
        refused(t2, state, "device status", s -> s.putInt(STATUS_AT, DRIVER_OK));
        refused(t2, state, "device status", s -> s.putInt(STATUS_AT, 0x1f));
        refused(t2, state, "FEATURES_OK with features", s -> s.putLong(FEATURES_AT, ALL & ~VirtioFeatures.VERSION_1));
        refused(t2, state, "FEATURES_OK with features", s -> s.putLong(FEATURES_AT, ALL | 1L << 40));
        refused(t2, state, "interrupt status", s -> s.putInt(INTERRUPTS_AT, 4));
        refused(t2, state, "not a power of two", s -> s.putInt(QUEUE_SIZE_AT, 48));
        refused(t2, state, "not a power of two", s -> s.putInt(QUEUE_SIZE_AT, 512));
        refused(t2, state, "not in guest RAM", s -> s.putLong(DESC_AT, FakeDeviceContext.RAM_SIZE - 512));
        refused(t2, state, "not in guest RAM", s -> s.putLong(DESC_AT, 1L << 46));
        refused(t2, state, "aligned", s -> s.putLong(DESC_AT, q.descriptorTable() + 8));
        refused(t2, state, "a boolean", s -> s.put(READY_AT, (byte) 2));
        refused(t2, state, "past the next used index", s -> s.putShort(NEXT_AVAIL_AT, (short) (2 + SIZE + 1)));
        refused(t2, state, "used ring's index in guest memory", s -> {
            s.putShort(NEXT_AVAIL_AT, (short) 3);
            s.putShort(NEXT_USED_AT, (short) 3);
        });
        refused(t2, state, "short or corrupted", s -> s.putInt(DEVICE_BLOCK_AT, 4));

        restoreInner(t2, state);
        request(ctx2, 8);
        assertThat(q.usedIdx()).isEqualTo(3);
    }

    @Test
    void anotherDevicesStateIsRefused() throws Exception {
        driver.bringUp(ALL, List.of(q));
        byte[] state = snapshot(t);
        t.close();
        VirtioMmioTransport other = fresh(new HoldingDevice());
        assertThatThrownBy(() -> restore(other, state)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("of another device");
        assertNothingStarted(other);
    }

    private void refused(VirtioMmioTransport t2, byte[] state, String why, Consumer<ByteBuffer> change) {
        byte[] bad = state.clone();
        change.accept(ByteBuffer.wrap(bad).order(ByteOrder.LITTLE_ENDIAN));
        assertThatThrownBy(() -> restoreInner(t2, bad)).as(why).isInstanceOf(SnapshotException.class)
                .hasMessageContaining(why);
        assertNothingStarted(t2);
    }

    /** A device that takes requests and never completes them (what the transport must not save). */
    private static final class HoldingDevice implements VirtioDevice {
        final List<DescriptorChain> held = new java.util.concurrent.CopyOnWriteArrayList<>();
        private VirtioWorker worker;

        @Override
        public int deviceType() {
            return 0x2b;
        }

        @Override
        public String name() {
            return "hold0";
        }

        @Override
        public long features() {
            return 0;
        }

        @Override
        public int queueCount() {
            return 1;
        }

        @Override
        public int queueMaxSize(int index) {
            return 256;
        }

        @Override
        public int configSize() {
            return 0;
        }

        @Override
        public long readConfig(int offset, int size) {
            return 0;
        }

        @Override
        public void writeConfig(int offset, int size, long value) {}

        @Override
        public synchronized void activate(VirtioContext c) {
            worker = VirtioWorker.start("hold", c.threads(), List.of(c.queueNotifier(0)), () -> {
                Virtqueue vq = c.queues().getFirst();
                try {
                    for (Optional<DescriptorChain> n = vq.pop(c.memory()); n.isPresent(); n = vq.pop(c.memory())) {
                        held.add(n.get());
                    }
                } catch (VirtqueueException e) {
                    c.needsReset(e.getMessage());
                }
                return -1;
            }, c::reportFatal);
        }

        @Override
        public synchronized void reset() {
            if (worker != null) {
                worker.stop();
                worker = null;
            }
        }

        @Override
        public synchronized void quiesce() {
            if (worker != null) {
                worker.quiesce();
            }
        }

        @Override
        public void close() {
            reset();
        }
    }
}
