package dev.kindling.devices.virtio.mmio;

import static dev.kindling.devices.virtio.mmio.VirtioMmioTransport.*;

import dev.kindling.devices.virtio.FakeDeviceContext;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The guest's virtio-mmio driver for tests, register by register as Linux's {@code virtio_mmio.c}
 * probes a device, and the machine's side of a snapshot of one transport (pause, save, restore on a
 * fresh transport).
 */
public final class MmioDriver {
    public static final long WAIT_MS = 10_000;
    /** The status register's offset, for tests outside this package. */
    public static final int STATUS_REG = STATUS;

    private final VirtioMmioTransport t;

    public MmioDriver(VirtioMmioTransport t) {
        this.t = t;
    }

    public int r(int offset) {
        return (int) t.read(offset, 4);
    }

    public void w(int offset, int value) {
        t.write(offset, 4, value & 0xffffffffL);
    }

    public void addStatus(int bits) {
        w(STATUS, r(STATUS) | bits);
    }

    public long deviceFeatures() {
        w(DEVICE_FEATURES_SEL, 1);
        long high = r(DEVICE_FEATURES) & 0xffffffffL;
        w(DEVICE_FEATURES_SEL, 0);
        return high << 32 | (r(DEVICE_FEATURES) & 0xffffffffL);
    }

    /** Reset, ACKNOWLEDGE, DRIVER, the features offered and in {@code accept}, FEATURES_OK; the features taken. */
    public long negotiate(long accept) {
        w(STATUS, 0);
        addStatus(ACKNOWLEDGE);
        addStatus(DRIVER);
        long features = deviceFeatures() & accept;
        w(DRIVER_FEATURES_SEL, 1);
        w(DRIVER_FEATURES, (int) (features >>> 32));
        w(DRIVER_FEATURES_SEL, 0);
        w(DRIVER_FEATURES, (int) features);
        addStatus(FEATURES_OK);
        if ((r(STATUS) & FEATURES_OK) == 0) {
            throw new AssertionError("the device refused features 0x" + Long.toHexString(features));
        }
        return features;
    }

    public void setUpQueue(int index, VirtqueueDriver q) {
        w(QUEUE_SEL, index);
        w(QUEUE_NUM, q.size());
        w(QUEUE_DESC_LOW, (int) q.descriptorTable());
        w(QUEUE_DESC_HIGH, (int) (q.descriptorTable() >>> 32));
        w(QUEUE_DRIVER_LOW, (int) q.availableRing());
        w(QUEUE_DRIVER_HIGH, (int) (q.availableRing() >>> 32));
        w(QUEUE_DEVICE_LOW, (int) q.usedRing());
        w(QUEUE_DEVICE_HIGH, (int) (q.usedRing() >>> 32));
        w(QUEUE_READY, 1);
    }

    /** Negotiates {@code accept}, sets up {@code queues} in order and sets DRIVER_OK. */
    public void bringUp(long accept, List<VirtqueueDriver> queues) {
        negotiate(accept);
        for (int i = 0; i < queues.size(); i++) {
            setUpQueue(i, queues.get(i));
        }
        addStatus(DRIVER_OK);
        if ((r(STATUS) & DEVICE_NEEDS_RESET) != 0) {
            throw new AssertionError("the device did not start");
        }
    }

    /**
     * Every register the driver can read, queue registers for each queue up to {@code queues}; the
     * queue selector is put back as it was (it is read as the last entry).
     */
    public Map<String, Integer> registers(int queues, int configBytes) {
        Map<String, Integer> m = new LinkedHashMap<>();
        for (int off = 0; off < 0x100; off += 4) {
            if (off != QUEUE_NUM_MAX && off != QUEUE_READY) {
                m.put("0x" + Integer.toHexString(off), r(off));
            }
        }
        for (int sel = 0; sel < 2; sel++) {
            w(DEVICE_FEATURES_SEL, sel);
            m.put("features" + sel, r(DEVICE_FEATURES));
        }
        w(DEVICE_FEATURES_SEL, 0);
        for (int i = 0; i < queues; i++) {
            w(QUEUE_SEL, i);
            m.put("q" + i + ".max", r(QUEUE_NUM_MAX));
            m.put("q" + i + ".ready", r(QUEUE_READY));
        }
        w(QUEUE_SEL, 0);
        for (int off = 0; off < configBytes; off++) {
            m.put("config" + off, (int) t.read(CONFIG + off, 1));
        }
        return m;
    }

    /** The machine's pause and snapshot of {@code t}: quiesced, then saved as one part. */
    public static byte[] snapshot(VirtioMmioTransport t) {
        t.quiesce();
        StateWriter out = new StateWriter();
        out.putState(t);
        return out.toByteArray();
    }

    /** Restores {@code t} from what {@link #snapshot} wrote, reading it to the end. */
    public static void restore(VirtioMmioTransport t, byte[] state) {
        StateReader in = new StateReader(state, "machine");
        in.getState(t, "virtio0");
        in.expectEnd();
    }

    /** The first used entry the driver has not read, waiting for it. */
    public static Used awaitUsed(VirtqueueDriver q) throws InterruptedException {
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

    /** The queue notify the guest's write makes: the ioeventfd KVM would signal. */
    public static void kick(FakeDeviceContext ctx, int queue) {
        ctx.ioEvents().stream().filter(e -> !e.closed() && e.datamatch().orElse(-1) == queue)
                .reduce((a, b) -> b).orElseThrow(() -> new AssertionError("no ioeventfd for queue " + queue))
                .eventFd().signal();
    }
}
