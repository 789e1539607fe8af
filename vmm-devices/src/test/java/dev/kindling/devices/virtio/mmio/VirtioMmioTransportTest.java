package dev.kindling.devices.virtio.mmio;

import static dev.kindling.devices.virtio.mmio.VirtioMmioTransport.*;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.readable;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.bus.AddressSpace;
import dev.kindling.devices.virtio.FakeDeviceContext;
import dev.kindling.devices.virtio.VirtioContext;
import dev.kindling.devices.virtio.VirtioDevice;
import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.VirtioIds;
import dev.kindling.devices.virtio.VirtioWorker;
import dev.kindling.devices.virtio.queue.DescriptorChain;
import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import dev.kindling.devices.virtio.queue.VirtqueueException;
import dev.kindling.devices.virtio.rng.VirtioRng;
import dev.kindling.memory.GuestMemory;
import dev.kindling.testing.FakeIoEvent;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class VirtioMmioTransportTest {
    private static final long BASE = 0xd000_0000L;
    private static final long DEVICE_FEATURE_A = 1L << 0;
    private static final long DEVICE_FEATURE_B = 1L << 5;
    private static final int QUEUE_MAX = 16;
    private static final long WAIT_MS = 5_000;

    private final FakeDeviceContext ctx = new FakeDeviceContext();
    private final EchoDevice device = new EchoDevice();
    private final VirtioMmioTransport t = new VirtioMmioTransport(device, ctx, BASE);

    @AfterEach
    void tearDown() {
        t.close();
        assertThat(ctx.recordingThreads().alive()).isEmpty();
        assertThat(ctx.recordingIrq().events()).as("virtio-mmio only pulses its line").allMatch("P"::equals);
        ctx.close();
    }

    // ---- the driver's side, register by register as Linux's virtio_mmio.c does

    private int r(int offset) {
        return (int) t.read(offset, 4);
    }

    private void w(int offset, int value) {
        t.write(offset, 4, value & 0xffffffffL);
    }

    private void addStatus(int bits) {
        w(STATUS, r(STATUS) | bits);
    }

    private long deviceFeatures() {
        w(DEVICE_FEATURES_SEL, 1);
        long high = r(DEVICE_FEATURES) & 0xffffffffL;
        w(DEVICE_FEATURES_SEL, 0);
        return high << 32 | (r(DEVICE_FEATURES) & 0xffffffffL);
    }

    private void driverFeatures(long features) {
        w(DRIVER_FEATURES_SEL, 1);
        w(DRIVER_FEATURES, (int) (features >>> 32));
        w(DRIVER_FEATURES_SEL, 0);
        w(DRIVER_FEATURES, (int) features);
    }

    /** Probe to FEATURES_OK; true if the device kept FEATURES_OK. */
    private boolean negotiate(long accept) {
        assertThat(r(MAGIC_VALUE)).isEqualTo(0x74726976);
        assertThat(r(VERSION_REG)).isEqualTo(2);
        assertThat(r(DEVICE_ID)).isEqualTo(EchoDevice.ID);
        assertThat(r(VENDOR_ID_REG)).isEqualTo(VENDOR_ID);
        w(STATUS, 0);
        assertThat(r(STATUS)).isZero();
        addStatus(ACKNOWLEDGE);
        addStatus(DRIVER);
        driverFeatures(deviceFeatures() & accept);
        addStatus(FEATURES_OK);
        return (r(STATUS) & FEATURES_OK) != 0;
    }

    private void setUpQueue(int index, VirtqueueDriver q) {
        w(QUEUE_SEL, index);
        assertThat(r(QUEUE_READY)).isZero();
        assertThat(r(QUEUE_NUM_MAX)).isEqualTo(QUEUE_MAX);
        w(QUEUE_NUM, q.size());
        w(QUEUE_DESC_LOW, (int) q.descriptorTable());
        w(QUEUE_DESC_HIGH, (int) (q.descriptorTable() >>> 32));
        w(QUEUE_DRIVER_LOW, (int) q.availableRing());
        w(QUEUE_DRIVER_HIGH, (int) (q.availableRing() >>> 32));
        w(QUEUE_DEVICE_LOW, (int) q.usedRing());
        w(QUEUE_DEVICE_HIGH, (int) (q.usedRing() >>> 32));
        w(QUEUE_READY, 1);
        assertThat(r(QUEUE_READY)).isOne();
    }

    private static final long ALL = VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX
            | VirtioFeatures.RING_INDIRECT_DESC | DEVICE_FEATURE_A | DEVICE_FEATURE_B;

    private VirtqueueDriver ring(long features) {
        return VirtqueueDriver.on(ctx.memory(), 0x10_0000, 4 << 20, QUEUE_MAX, features);
    }

    /** A full probe with both queues; returns queue 0's driver (queue 1's is its sibling). */
    private List<VirtqueueDriver> bringUp(long accept) {
        assertThat(negotiate(accept)).isTrue();
        VirtqueueDriver q0 = ring(accept);
        VirtqueueDriver q1 = q0.sibling(QUEUE_MAX);
        setUpQueue(0, q0);
        setUpQueue(1, q1);
        addStatus(DRIVER_OK);
        return List.of(q0, q1);
    }

    private static Used awaitUsed(VirtqueueDriver q) throws InterruptedException {
        long end = System.nanoTime() + WAIT_MS * 1_000_000;
        while (System.nanoTime() < end) {
            Optional<Used> u = q.used();
            if (u.isPresent()) {
                return u.get();
            }
            Thread.sleep(1);
        }
        throw new AssertionError("the device returned no chain within " + WAIT_MS + " ms");
    }

    // ---- tests

    @Test
    void linuxProbeNegotiatesSetsUpQueuesAndServesANotify() throws Exception {
        assertThat(negotiate(ALL)).isTrue();
        assertThat(deviceFeatures()).isEqualTo(ALL);
        VirtqueueDriver q0 = ring(ALL);
        setUpQueue(0, q0);
        setUpQueue(1, q0.sibling(QUEUE_MAX));
        w(QUEUE_SEL, 2);
        assertThat(r(QUEUE_NUM_MAX)).as("a queue the device does not have").isZero();
        assertThat(device.activations.get()).isZero();
        addStatus(DRIVER_OK);

        assertThat(r(STATUS)).isEqualTo(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        assertThat(device.context.features()).isEqualTo(ALL);
        assertThat(device.context.queues()).allMatch(Virtqueue::ready);
        assertThat(device.context.queues().get(0).eventIdx()).isTrue();
        List<FakeIoEvent> io = ctx.ioEvents();
        assertThat(io).hasSize(2);
        for (int i = 0; i < 2; i++) {
            assertThat(io.get(i).space()).isEqualTo(AddressSpace.MMIO);
            assertThat(io.get(i).address()).isEqualTo(BASE + 0x50);
            assertThat(io.get(i).length()).isEqualTo(4);
            assertThat(io.get(i).datamatch()).isEqualTo(OptionalLong.of(i));
            assertThat(device.context.queueNotifier(i)).isSameAs(io.get(i).eventFd());
        }

        int head = q0.add(List.of(readable("ping"), writable(16)));
        io.get(0).eventFd().signal(); // what KVM does for the guest's QueueNotify write of 0
        Used used = awaitUsed(q0);
        assertThat(used.id()).isEqualTo(head);
        assertThat(new String(used.written(), StandardCharsets.UTF_8)).isEqualTo("pong:ping");
        assertThat(ctx.recordingIrq().awaitPulses(1, WAIT_MS)).isTrue();
        assertThat(r(INTERRUPT_STATUS)).isEqualTo(INT_VRING);
        w(INTERRUPT_ACK, INT_VRING);
        assertThat(r(INTERRUPT_STATUS)).isZero();
    }

    @Test
    void aNotifyThroughTheBusReachesTheDeviceWhenThereAreNoIoEventFds() throws Exception {
        ctx.failIoEvents();
        VirtqueueDriver q0 = bringUp(ALL).get(0);
        assertThat(r(STATUS) & DEVICE_NEEDS_RESET).isZero();
        int head = q0.add(List.of(readable("x"), writable(8)));
        w(QUEUE_NOTIFY, 0);
        assertThat(awaitUsed(q0).id()).isEqualTo(head);
        w(QUEUE_NOTIFY, 7); // no such queue: ignored
        t.write(QUEUE_NOTIFY, 2, 0); // not a 32-bit write: ignored
    }

    @Test
    void driverWithoutVersion1CannotSetFeaturesOk() {
        assertThat(negotiate(ALL & ~VirtioFeatures.VERSION_1)).isFalse();
        addStatus(DRIVER_OK);
        assertThat(r(STATUS) & (FEATURES_OK | DRIVER_OK)).isZero();
        assertThat(device.activations.get()).isZero();
    }

    @Test
    void featuresNotOfferedCannotBeAccepted() {
        w(STATUS, 0);
        addStatus(ACKNOWLEDGE);
        addStatus(DRIVER);
        driverFeatures(ALL | 1L << 40);
        addStatus(FEATURES_OK);
        assertThat(r(STATUS) & FEATURES_OK).isZero();
        // after a reset the same driver may try again with what was offered
        assertThat(negotiate(ALL)).isTrue();
    }

    @Test
    void statusBitsMustComeInOrder() {
        w(STATUS, 0);
        w(STATUS, DRIVER);
        assertThat(r(STATUS)).as("DRIVER before ACKNOWLEDGE").isZero();
        w(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        assertThat(r(STATUS)).as("without VERSION_1 negotiated FEATURES_OK and DRIVER_OK are refused")
                .isEqualTo(ACKNOWLEDGE | DRIVER);
        w(STATUS, ACKNOWLEDGE);
        assertThat(r(STATUS)).as("a bit cannot be cleared but by a reset").isEqualTo(ACKNOWLEDGE | DRIVER);
        w(STATUS, ACKNOWLEDGE | DRIVER | DRIVER_OK);
        assertThat(r(STATUS)).as("DRIVER_OK before FEATURES_OK").isEqualTo(ACKNOWLEDGE | DRIVER);
        w(STATUS, FAILED);
        assertThat(r(STATUS)).isEqualTo(ACKNOWLEDGE | DRIVER | FAILED);
        assertThat(device.activations.get()).isZero();
    }

    @Test
    void resetReturnsEveryQueueAndRegisterToItsInitialState() throws Exception {
        List<VirtqueueDriver> qs = bringUp(ALL);
        VirtqueueDriver q0 = qs.get(0);
        q0.add(List.of(readable("a"), writable(8)));
        ctx.ioEvents().get(0).eventFd().signal();
        awaitUsed(q0);
        assertThat(ctx.recordingIrq().awaitPulses(1, WAIT_MS)).isTrue();
        assertThat(r(INTERRUPT_STATUS)).isEqualTo(INT_VRING);
        List<Virtqueue> queues = device.context.queues();
        List<Thread> workers = ctx.recordingThreads().made();
        assertThat(workers).isNotEmpty();
        int resets = device.resets.get();

        w(STATUS, 0);

        assertThat(device.resets.get()).isEqualTo(resets + 1);
        assertThat(workers).noneMatch(Thread::isAlive);
        assertThat(r(STATUS)).isZero();
        assertThat(r(INTERRUPT_STATUS)).isZero();
        assertThat(ctx.ioEvents()).allMatch(FakeIoEvent::closed);
        for (int i = 0; i < queues.size(); i++) {
            Virtqueue q = queues.get(i);
            assertThat(q.ready()).isFalse();
            assertThat(q.size()).isEqualTo(QUEUE_MAX);
            assertThat(q.descriptorTable()).isZero();
            assertThat(q.availableRing()).isZero();
            assertThat(q.usedRing()).isZero();
            assertThat(q.nextAvail()).isZero();
            assertThat(q.nextUsed()).isZero();
            w(QUEUE_SEL, i);
            assertThat(r(QUEUE_READY)).isZero();
        }
        // driver features were forgotten: accepting nothing now fails VERSION_1
        w(STATUS, ACKNOWLEDGE);
        w(STATUS, ACKNOWLEDGE | DRIVER);
        w(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assertThat(r(STATUS) & FEATURES_OK).isZero();

        // and the device comes up again on fresh rings
        w(STATUS, 0);
        assertThat(negotiate(ALL)).isTrue();
        VirtqueueDriver again = VirtqueueDriver.on(ctx.memory(), 0x60_0000, 1 << 20, QUEUE_MAX, ALL);
        setUpQueue(0, again);
        addStatus(DRIVER_OK);
        assertThat(device.activations.get()).isEqualTo(2);
        int head = again.add(List.of(readable("b"), writable(8)));
        ctx.ioEvents().get(2).eventFd().signal();
        assertThat(awaitUsed(again).id()).isEqualTo(head);
    }

    @Test
    void queueRegistersAreReadOnlyOnceDriverOk() {
        bringUp(ALL);
        Virtqueue q0 = device.context.queues().get(0);
        long desc = q0.descriptorTable();
        w(QUEUE_SEL, 0);
        w(QUEUE_DESC_LOW, 0x1000);
        w(QUEUE_NUM, 4);
        w(QUEUE_READY, 0);
        assertThat(q0.descriptorTable()).isEqualTo(desc);
        assertThat(q0.size()).isEqualTo(QUEUE_MAX);
        assertThat(q0.ready()).isTrue();
    }

    @Test
    void aQueueThatDoesNotValidateSetsNeedsResetWithAConfigInterrupt() {
        assertThat(negotiate(ALL)).isTrue();
        w(QUEUE_SEL, 0);
        w(QUEUE_NUM, 16);
        w(QUEUE_DESC_LOW, 0x10_0008); // not 16-byte aligned
        w(QUEUE_DRIVER_LOW, 0x20_0000);
        w(QUEUE_DEVICE_LOW, 0x30_0000);
        w(QUEUE_READY, 1);
        addStatus(DRIVER_OK);
        assertThat(r(STATUS) & DEVICE_NEEDS_RESET).isEqualTo(DEVICE_NEEDS_RESET);
        assertThat(r(INTERRUPT_STATUS)).isEqualTo(INT_CONFIG);
        assertThat(ctx.recordingIrq().pulses()).isEqualTo(1);
        assertThat(device.activations.get()).isZero();
        w(STATUS, 0);
        assertThat(r(STATUS)).isZero();
    }

    @Test
    void aQueueSizeThatIsNotAPowerOfTwoSetsNeedsReset() {
        assertThat(negotiate(ALL)).isTrue();
        VirtqueueDriver q0 = ring(ALL);
        setUpQueue(0, q0);
        w(QUEUE_SEL, 0);
        w(QUEUE_NUM, 12);
        addStatus(DRIVER_OK);
        assertThat(r(STATUS) & DEVICE_NEEDS_RESET).isEqualTo(DEVICE_NEEDS_RESET);
        assertThat(device.activations.get()).isZero();
    }

    @Test
    void theDeviceAsksForAReset() throws Exception {
        bringUp(ALL);
        device.context.needsReset("backend gone");
        assertThat(r(STATUS)).isEqualTo(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK | DEVICE_NEEDS_RESET);
        assertThat(r(INTERRUPT_STATUS)).isEqualTo(INT_CONFIG);
        // the driver writing the status it read back changes nothing
        w(STATUS, r(STATUS));
        assertThat(r(STATUS) & DEVICE_NEEDS_RESET).isEqualTo(DEVICE_NEEDS_RESET);
        w(STATUS, 0);
        assertThat(r(STATUS)).isZero();
    }

    @Test
    void aDeviceThatThrowsFromActivateIsReportedAndNeedsReset() {
        device.failActivate = true;
        bringUp(ALL);
        assertThat(r(STATUS) & DEVICE_NEEDS_RESET).isEqualTo(DEVICE_NEEDS_RESET);
        assertThat(ctx.fatals()).hasSize(1);
        assertThat(ctx.fatals().get(0).cause()).hasMessage("no backend");
        w(STATUS, 0);
        assertThat(ctx.ioEvents()).allMatch(FakeIoEvent::closed);
    }

    @Test
    void configSpaceIsBoundsCheckedAndGenerationCountsChanges() throws Exception {
        assertThat(t.read(CONFIG, 1)).isEqualTo(0x11);
        assertThat(t.read(CONFIG + 2, 2)).isEqualTo(0x4433);
        assertThat(t.read(CONFIG + 4, 4)).isEqualTo(0x88776655L);
        assertThat(t.read(CONFIG + 6, 4)).as("crosses the end").isEqualTo(0xffffffffL);
        assertThat(t.read(CONFIG + 8, 1)).as("past the end").isEqualTo(0xff);
        assertThat(t.read(CONFIG, 8)).as("no 64-bit accesses").isEqualTo(-1L);
        assertThat(t.read(LENGTH - 4, 4)).isEqualTo(0xffffffffL);
        t.write(CONFIG + 1, 1, 0xab);
        assertThat(t.read(CONFIG, 2)).isEqualTo(0xab11);
        t.write(CONFIG + 7, 2, 0xcdcd); // crosses the end: dropped
        assertThat(t.read(CONFIG + 4, 4)).isEqualTo(0x88776655L);

        bringUp(ALL);
        int gen = r(CONFIG_GENERATION);
        device.context.signalConfigChange();
        assertThat(r(CONFIG_GENERATION)).isEqualTo(gen + 1);
        assertThat(r(INTERRUPT_STATUS)).isEqualTo(INT_CONFIG);
        assertThat(ctx.recordingIrq().pulses()).isEqualTo(1);
        w(INTERRUPT_ACK, INT_CONFIG);
        assertThat(r(INTERRUPT_STATUS)).isZero();
    }

    @Test
    void registersAreThirtyTwoBitsAndUnknownOnesReadZero() {
        assertThat(t.read(MAGIC_VALUE, 2)).isEqualTo(0xffff);
        assertThat(t.read(MAGIC_VALUE, 1)).isEqualTo(0xff);
        assertThat(t.read(MAGIC_VALUE + 1, 4)).isEqualTo(0xffffffffL);
        assertThat(t.read(MAGIC_VALUE, 8)).isEqualTo(-1L);
        assertThat(r(0x018)).isZero();
        assertThat(r(SHM_LEN_LOW)).isEqualTo(-1);
        assertThat(r(SHM_LEN_HIGH)).isEqualTo(-1);
        w(STATUS, 0);
        t.write(STATUS, 1, ACKNOWLEDGE); // a byte write to a register: ignored
        assertThat(r(STATUS)).isZero();
        t.write(-4, 4, 1);
        t.write(0x1000, 4, 1);
        assertThat(t.read(0x1000, 4)).isEqualTo(0xffffffffL);
    }

    @Test
    void interruptsFollowTheDriversSuppression() throws Exception {
        VirtqueueDriver q0 = bringUp(VirtioFeatures.VERSION_1).get(0);
        q0.setAvailFlags(Virtqueue.AVAIL_F_NO_INTERRUPT);
        q0.add(List.of(readable("quiet"), writable(16)));
        ctx.ioEvents().get(0).eventFd().signal();
        awaitUsed(q0);
        assertThat(r(INTERRUPT_STATUS)).isZero();
        assertThat(ctx.recordingIrq().pulses()).isZero();
        q0.setAvailFlags(0);
        q0.add(List.of(readable("loud"), writable(16)));
        ctx.ioEvents().get(0).eventFd().signal();
        awaitUsed(q0);
        assertThat(ctx.recordingIrq().awaitPulses(1, WAIT_MS)).isTrue();
        assertThat(r(INTERRUPT_STATUS)).isEqualTo(INT_VRING);
    }

    @Test
    void closeStopsTheDeviceAndRemovesTheIoEventFds() {
        bringUp(ALL);
        assertThat(ctx.recordingThreads().alive()).isNotEmpty();
        t.close();
        assertThat(device.closed).isTrue();
        assertThat(ctx.recordingThreads().alive()).isEmpty();
        assertThat(ctx.ioEvents()).allMatch(FakeIoEvent::closed);
        w(STATUS, ACKNOWLEDGE); // after close: ignored, no exception
    }

    @Test
    void servesVirtioRngThroughTheRegisters() throws Exception {
        FakeDeviceContext rngCtx = new FakeDeviceContext();
        try (VirtioMmioTransport rng = new VirtioMmioTransport(new VirtioRng("rng0"), rngCtx, BASE + LENGTH)) {
            assertThat(rng.read(DEVICE_ID, 4)).isEqualTo(VirtioIds.RNG);
            rng.write(STATUS, 4, ACKNOWLEDGE);
            rng.write(STATUS, 4, ACKNOWLEDGE | DRIVER);
            rng.write(DEVICE_FEATURES_SEL, 4, 1);
            assertThat(rng.read(DEVICE_FEATURES, 4) & 1).as("VERSION_1").isOne();
            rng.write(DRIVER_FEATURES_SEL, 4, 1);
            rng.write(DRIVER_FEATURES, 4, 1);
            rng.write(STATUS, 4, ACKNOWLEDGE | DRIVER | FEATURES_OK);
            assertThat(rng.status() & FEATURES_OK).isEqualTo(FEATURES_OK);
            VirtqueueDriver q = VirtqueueDriver.on(rngCtx.memory(), 0x10_0000, 1 << 20, 64, VirtioFeatures.VERSION_1);
            rng.write(QUEUE_SEL, 4, 0);
            assertThat(rng.read(QUEUE_NUM_MAX, 4)).isEqualTo(256);
            rng.write(QUEUE_NUM, 4, 64);
            rng.write(QUEUE_DESC_LOW, 4, q.descriptorTable());
            rng.write(QUEUE_DRIVER_LOW, 4, q.availableRing());
            rng.write(QUEUE_DEVICE_LOW, 4, q.usedRing());
            rng.write(QUEUE_READY, 4, 1);
            rng.write(STATUS, 4, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
            int head = q.add(List.of(writable(32)));
            rngCtx.ioEvents().get(0).eventFd().signal();
            Used used = awaitUsed(q);
            assertThat(used.id()).isEqualTo(head);
            assertThat(used.length()).isEqualTo(32);
            assertThat(rngCtx.recordingIrq().awaitPulses(1, WAIT_MS)).isTrue();
            assertThat(rng.read(INTERRUPT_STATUS, 4)).isEqualTo(INT_VRING);
        } finally {
            assertThat(rngCtx.recordingThreads().alive()).isEmpty();
            assertThat(rngCtx.recordingIrq().events()).as("virtio-mmio only pulses its line").allMatch("P"::equals);
            rngCtx.close();
        }
    }

    /**
     * Two queues, 8 bytes of configuration space; queue 0 answers each chain with "pong:" and what
     * it read, on a device thread.
     */
    private static final class EchoDevice implements VirtioDevice {
        static final int ID = 0x2a;
        final AtomicInteger activations = new AtomicInteger();
        final AtomicInteger resets = new AtomicInteger();
        final byte[] config = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, (byte) 0x88};
        volatile VirtioContext context;
        volatile boolean failActivate;
        volatile boolean closed;
        private VirtioWorker worker;

        @Override
        public int deviceType() {
            return ID;
        }

        @Override
        public String name() {
            return "echo0";
        }

        @Override
        public long features() {
            return DEVICE_FEATURE_A | DEVICE_FEATURE_B;
        }

        @Override
        public int queueCount() {
            return 2;
        }

        @Override
        public int queueMaxSize(int index) {
            return QUEUE_MAX;
        }

        @Override
        public int configSize() {
            return config.length;
        }

        @Override
        public synchronized long readConfig(int offset, int size) {
            long v = 0;
            for (int i = size - 1; i >= 0; i--) {
                v = v << 8 | (config[offset + i] & 0xff);
            }
            return v;
        }

        @Override
        public synchronized void writeConfig(int offset, int size, long value) {
            for (int i = 0; i < size; i++) {
                config[offset + i] = (byte) (value >>> (8 * i));
            }
        }

        @Override
        public synchronized void activate(VirtioContext c) {
            context = c;
            if (failActivate) {
                throw new IllegalStateException("no backend");
            }
            activations.incrementAndGet();
            worker = VirtioWorker.start("echo", c.threads(), List.of(c.queueNotifier(0)), () -> serve(c), c::reportFatal);
        }

        private int serve(VirtioContext c) {
            GuestMemory mem = c.memory();
            Virtqueue q = c.queues().get(0);
            try {
                do {
                for (Optional<DescriptorChain> next = q.pop(mem); next.isPresent(); next = q.pop(mem)) {
                    DescriptorChain chain = next.get();
                    List<Byte> in = new ArrayList<>();
                    chain.readable().forEach(d -> {
                        for (byte b : mem.read(d.address(), d.length())) {
                            in.add(b);
                        }
                    });
                    byte[] reply = ("pong:" + new String(toArray(in), StandardCharsets.UTF_8)).getBytes(StandardCharsets.UTF_8);
                    var out = chain.writable().get(0);
                    int n = Math.min(reply.length, out.length());
                    mem.write(out.address(), Arrays.copyOf(reply, n));
                    q.addUsed(mem, chain.head(), n);
                    c.signalUsed(0);
                }
                } while (q.setNotificationsEnabled(mem, true));
            } catch (VirtqueueException e) {
                c.needsReset(e.getMessage());
            }
            return -1;
        }

        private static byte[] toArray(List<Byte> bytes) {
            byte[] b = new byte[bytes.size()];
            for (int i = 0; i < b.length; i++) {
                b[i] = bytes.get(i);
            }
            return b;
        }

        @Override
        public synchronized void reset() {
            resets.incrementAndGet();
            if (worker != null) {
                worker.stop();
                worker = null;
            }
        }

        @Override
        public synchronized void close() {
            reset();
            closed = true;
        }
    }
}
