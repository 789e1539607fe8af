package dev.kindling.devices.virtio.blk;

import static dev.kindling.devices.virtio.queue.VirtqueueDriver.readable;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;

import dev.kindling.devices.virtio.VirtioContext;
import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Buffer;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import dev.kindling.memory.GuestMemory;
import dev.kindling.sys.EventFd;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;

/**
 * A transport stand-in for device tests: the mock driver's queue as the device's queue 0, an eventfd
 * as its notifier, and records of interrupts, resets and fatal reports. Builds virtio-blk requests and
 * waits for their completion.
 */
final class BlkHarness implements VirtioContext, AutoCloseable {
    static final long RING_FEATURES = VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX | VirtioFeatures.RING_INDIRECT_DESC;
    private static final long WAIT_SECONDS = 20;

    final VirtqueueDriver driver;
    private final long features;
    private final EventFd notifier = EventFd.nonBlocking();
    private final Semaphore interrupts = new Semaphore(0);
    private final Semaphore resetSignals = new Semaphore(0);
    final List<String> resets = Collections.synchronizedList(new ArrayList<>());
    final List<String> fatals = Collections.synchronizedList(new ArrayList<>());

    /** A queue of {@code size} and every feature {@code device} offers accepted. */
    BlkHarness(VirtioBlk device, int size) {
        this(device.features(), size);
        this.device = device;
    }

    /** Closed first on close(), as a machine stops its devices before it frees guest memory. */
    private VirtioBlk device;

    BlkHarness(long features, int size) {
        this.features = features;
        this.driver = VirtqueueDriver.create(size, features & RING_FEATURES);
        this.rawHead = size - 1;
        driver.rawDescriptor(rawHead, 0, 0, 0, 0);
    }

    /** The descriptor {@link #callRaw} chains start at, kept out of the driver's free list. */
    private final int rawHead;

    /** A completion of {@link #callRaw}: the used length and the chain's last writable byte. */
    record RawUsed(int length, int lastByte) {}

    /**
     * Writes {@code buffers} into an indirect table behind a descriptor of its own, so it knows where
     * the last writable byte (the status) is wherever the device wrote, and waits for completion.
     */
    RawUsed callRaw(List<? extends Buffer> buffers) {
        GuestMemory m = driver.memory();
        long table = driver.allocate(16L * buffers.size());
        long last = -1;
        for (int i = 0; i < buffers.size(); i++) {
            boolean end = i == buffers.size() - 1;
            int flags = end ? 0 : Virtqueue.DESC_F_NEXT;
            long at;
            int length;
            switch (buffers.get(i)) {
                case VirtqueueDriver.Readable r -> {
                    length = r.data().length;
                    at = driver.allocate(Math.max(1, length));
                    m.write(at, r.data());
                }
                case VirtqueueDriver.Writable w -> {
                    length = w.length();
                    at = driver.allocate(Math.max(1, length));
                    byte[] fill = new byte[length];
                    Arrays.fill(fill, (byte) 0xee);
                    m.write(at, fill);
                    flags |= Virtqueue.DESC_F_WRITE;
                    last = at + length - 1;
                }
            }
            driver.writeDescriptor(table, i, at, length, flags, end ? 0 : i + 1);
        }
        driver.rawDescriptor(rawHead, table, 16 * buffers.size(), Virtqueue.DESC_F_INDIRECT, 0);
        driver.publishHead(rawHead);
        notifier.signal();
        Used u = awaitUsed();
        if (u.id() != rawHead) {
            throw new AssertionError("used " + u + ", expected head " + rawHead);
        }
        return new RawUsed(u.length(), last < 0 ? -1 : m.read8(last));
    }

    @Override
    public GuestMemory memory() {
        return driver.memory();
    }

    @Override
    public long features() {
        return features;
    }

    @Override
    public List<Virtqueue> queues() {
        return List.of(driver.queue());
    }

    @Override
    public EventFd queueNotifier(int index) {
        if (index != 0) {
            throw new IllegalArgumentException("queue " + index);
        }
        return notifier;
    }

    @Override
    public void signalUsed(int index) {
        interrupts.release();
    }

    @Override
    public void signalConfigChange() {}

    @Override
    public void needsReset(String why) {
        resets.add(why);
        resetSignals.release();
    }

    @Override
    public ThreadFactory threads() {
        return Thread.ofPlatform().name("blk-test-io").daemon().factory();
    }

    @Override
    public void reportFatal(String what, Throwable cause) {
        fatals.add(what);
    }

    static byte[] header(int type, long sector) {
        return ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putInt(type).putInt(0).putLong(sector).array();
    }

    static byte[] ranges(long... sectorCountFlags) {
        ByteBuffer b = ByteBuffer.allocate(sectorCountFlags.length / 3 * 16).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < sectorCountFlags.length; i += 3) {
            b.putLong(sectorCountFlags[i]).putInt((int) sectorCountFlags[i + 1]).putInt((int) sectorCountFlags[i + 2]);
        }
        return b.array();
    }

    /** Makes {@code buffers} available as one chain and notifies the device; returns the head. */
    int submit(List<? extends Buffer> buffers, boolean indirect) {
        int head = indirect ? driver.addIndirect(buffers) : driver.add(buffers);
        notifier.signal();
        return head;
    }

    /** Submits and waits for the chain's completion. */
    Used call(List<? extends Buffer> buffers) {
        return call(buffers, false);
    }

    Used call(List<? extends Buffer> buffers, boolean indirect) {
        int head = submit(buffers, indirect);
        Used u = awaitUsed();
        if (u.id() != head) {
            throw new AssertionError("used " + u + ", expected head " + head);
        }
        return u;
    }

    /** The next used entry, waiting for the device's interrupt up to a bound. */
    Used awaitUsed() {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_SECONDS);
        while (true) {
            Optional<Used> u = driver.used();
            if (u.isPresent()) {
                return u.get();
            }
            long left = deadline - System.nanoTime();
            try {
                if (left <= 0 || !interrupts.tryAcquire(left, TimeUnit.NANOSECONDS)) {
                    throw new AssertionError("no used entry within " + WAIT_SECONDS + " s");
                }
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
    }

    /** True if an interrupt came within {@code millis} (or one was left from before). */
    boolean interruptWithin(long millis) throws InterruptedException {
        return interrupts.tryAcquire(millis, TimeUnit.MILLISECONDS);
    }

    /** True if the device asked for a reset within {@code millis}. */
    boolean resetWithin(long millis) throws InterruptedException {
        return resetSignals.tryAcquire(millis, TimeUnit.MILLISECONDS);
    }

    /** The status byte: the last byte the device wrote. */
    static int status(Used u) {
        return u.written()[u.written().length - 1];
    }

    /** A write of {@code data} at {@code sector} in one segment per entry of {@code segments} (lengths). */
    static List<Buffer> write(long sector, byte[] data, int... segments) {
        List<Buffer> b = new ArrayList<>();
        b.add(readable(header(BlkAbi.T_OUT, sector)));
        int at = 0;
        for (int len : segments) {
            byte[] part = new byte[len];
            System.arraycopy(data, at, part, 0, len);
            b.add(readable(part));
            at += len;
        }
        b.add(writable(1));
        return b;
    }

    /** A read at {@code sector} into one writable segment per entry of {@code segments}. */
    static List<Buffer> read(long sector, int... segments) {
        List<Buffer> b = new ArrayList<>();
        b.add(readable(header(BlkAbi.T_IN, sector)));
        for (int len : segments) {
            b.add(writable(len));
        }
        b.add(writable(1));
        return b;
    }

    static List<Buffer> simple(int type, byte[]... readableData) {
        List<Buffer> b = new ArrayList<>();
        b.add(readable(header(type, 0)));
        for (byte[] d : readableData) {
            b.add(readable(d));
        }
        b.add(writable(1));
        return b;
    }

    /** The data bytes of a completed read (without the status byte). */
    static byte[] data(Used u) {
        byte[] w = u.written();
        byte[] d = new byte[w.length - 1];
        System.arraycopy(w, 0, d, 0, d.length);
        return d;
    }

    @Override
    public void close() {
        if (device != null) {
            device.close();
        }
        notifier.close();
        driver.close();
    }
}
