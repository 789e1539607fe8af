package dev.kindling.devices.virtio.mmio;

import dev.kindling.bus.AddressSpace;
import dev.kindling.device.Device;
import dev.kindling.device.DeviceContext;
import dev.kindling.device.IoEvent;
import dev.kindling.devices.virtio.VirtioContext;
import dev.kindling.devices.virtio.VirtioDevice;
import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.memory.GuestMemory;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;
import dev.kindling.sys.EventFd;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The virtio-mmio transport (virtio 1.2 section 4.2.2, the version 2 register layout): a window of
 * {@link #LENGTH} bytes on the MMIO bus through which the guest's driver finds a {@link VirtioDevice},
 * negotiates features, sets up its queues and reaches its configuration space (from {@code 0x100}).
 *
 * <p><b>Features.</b> Offered: the device's features, {@link VirtioFeatures#VERSION_1} (a driver that
 * does not accept it cannot set FEATURES_OK: this is a modern-only device),
 * {@link VirtioFeatures#RING_EVENT_IDX} and {@link VirtioFeatures#RING_INDIRECT_DESC}. FEATURES_OK
 * stays clear when the driver accepted a feature that was not offered, or not VERSION_1.
 *
 * <p><b>Status.</b> Bits are set in order (ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK); a write that
 * clears a bit or skips a step is ignored, except FAILED, accepted at any time, and 0, which resets
 * the device: the device stops ({@link VirtioDevice#reset()}), every queue returns to its initial
 * state, and features, selectors and interrupt status are cleared. On DRIVER_OK each ready queue is
 * validated and the device activated; a queue that does not validate, a device that throws from
 * {@code activate}, or {@link VirtioContext#needsReset} sets DEVICE_NEEDS_RESET with a configuration
 * interrupt. Queue registers are written only before DRIVER_OK; later writes are ignored.
 *
 * <p><b>Notifications.</b> At DRIVER_OK each queue gets an ioeventfd on QueueNotify (4 bytes,
 * datamatch = queue index), so a driver's notify does not exit to user space; where the platform
 * cannot register one, a plain eventfd that a QueueNotify write through the bus signals. They are
 * removed on reset and close.
 *
 * <p><b>Interrupts.</b> Used buffers set InterruptStatus bit 0 and a configuration change bit 1, each
 * with a {@link dev.kindling.irq.IrqLine#pulse()} of the context's line (an irqfd on KVM, so device
 * threads raise it without an exit). InterruptACK clears the bits written.
 *
 * <p><b>Accesses.</b> Registers are 32 bits wide and aligned; other accesses below {@code 0x100} read
 * all ones and writes are ignored, as are registers that do not exist (they read 0). The configuration
 * space takes accesses of 1, 2 and 4 bytes inside the device's {@link VirtioDevice#configSize()};
 * others read all ones and writes are dropped. Nothing the guest does makes this class throw.
 *
 * <p><b>Snapshots.</b> {@link #saveState} (with the device quiesced) writes the registers, each
 * queue's registers and positions ({@link Virtqueue#saveState}), then the device's state
 * ({@link VirtioDevice#saveState}); a queue with chains taken and not completed cannot be saved.
 * {@link #restoreState} on a fresh transport of the same device (its type, features and queues are
 * checked) takes them back; if the driver had set DRIVER_OK it validates the ready queues as at
 * DRIVER_OK, checks that each used ring's index in guest memory (restored first) is the queue's,
 * and activates the device with the queues where they stood, so the driver notices nothing; a
 * pending interrupt is raised again. A state that does not fit throws {@link SnapshotException} and
 * leaves the transport reset, with no device thread running. The device threads and the interrupt
 * start at once: guest memory and the interrupt controller are restored before the transports.
 *
 * <p>The transport owns the device: {@link #close()} closes it.
 */
public final class VirtioMmioTransport implements Device, Stateful {
    private static final System.Logger LOG = System.getLogger(VirtioMmioTransport.class.getName());

    /** Bytes of MMIO space one transport decodes. */
    public static final long LENGTH = 0x200;
    /** "virt" in little-endian. */
    public static final int MAGIC = 0x74726976;
    public static final int VERSION = 2;
    /** "KNDL" in little-endian, as QEMU's is "QEMU". */
    public static final int VENDOR_ID = 0x4c444e4b;
    /** Features the transport and the queue implement for every device. */
    public static final long TRANSPORT_FEATURES =
            VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX | VirtioFeatures.RING_INDIRECT_DESC;

    // register offsets
    static final int MAGIC_VALUE = 0x000;
    static final int VERSION_REG = 0x004;
    static final int DEVICE_ID = 0x008;
    static final int VENDOR_ID_REG = 0x00c;
    static final int DEVICE_FEATURES = 0x010;
    static final int DEVICE_FEATURES_SEL = 0x014;
    static final int DRIVER_FEATURES = 0x020;
    static final int DRIVER_FEATURES_SEL = 0x024;
    static final int QUEUE_SEL = 0x030;
    static final int QUEUE_NUM_MAX = 0x034;
    static final int QUEUE_NUM = 0x038;
    static final int QUEUE_READY = 0x044;
    static final int QUEUE_NOTIFY = 0x050;
    static final int INTERRUPT_STATUS = 0x060;
    static final int INTERRUPT_ACK = 0x064;
    static final int STATUS = 0x070;
    static final int QUEUE_DESC_LOW = 0x080;
    static final int QUEUE_DESC_HIGH = 0x084;
    static final int QUEUE_DRIVER_LOW = 0x090;
    static final int QUEUE_DRIVER_HIGH = 0x094;
    static final int QUEUE_DEVICE_LOW = 0x0a0;
    static final int QUEUE_DEVICE_HIGH = 0x0a4;
    static final int SHM_SEL = 0x0ac;
    static final int SHM_LEN_LOW = 0x0b0;
    static final int SHM_LEN_HIGH = 0x0b4;
    static final int SHM_BASE_LOW = 0x0b8;
    static final int SHM_BASE_HIGH = 0x0bc;
    static final int CONFIG_GENERATION = 0x0fc;
    static final int CONFIG = 0x100;

    // device status bits (virtio 1.2 section 2.1)
    public static final int ACKNOWLEDGE = 1;
    public static final int DRIVER = 2;
    public static final int DRIVER_OK = 4;
    public static final int FEATURES_OK = 8;
    public static final int DEVICE_NEEDS_RESET = 0x40;
    public static final int FAILED = 0x80;

    // InterruptStatus bits
    public static final int INT_VRING = 1;
    public static final int INT_CONFIG = 2;

    private final VirtioDevice device;
    private final DeviceContext context;
    private final long base;
    private final long offered;
    private final List<Virtqueue> queues;

    /** Guards the registers below against vCPUs writing at once. */
    private final ReentrantLock lock = new ReentrantLock();
    private int status;
    private int deviceFeaturesSel;
    private int driverFeaturesSel;
    private long driverFeatures;
    private int queueSel;
    private Activation active;
    private boolean closed;

    // written by device threads too, without the lock (reset() waits for them while holding it)
    private final AtomicInteger interruptStatus = new AtomicInteger();
    private final AtomicInteger configGeneration = new AtomicInteger();
    private final AtomicBoolean needsReset = new AtomicBoolean();

    /**
     * A transport at {@code baseAddress} on the MMIO bus ({@link #LENGTH} bytes) for {@code device},
     * which it owns from now on. {@code context} gives guest memory, the interrupt line (the
     * transport's IRQ) and ioeventfds.
     */
    public VirtioMmioTransport(VirtioDevice device, DeviceContext context, long baseAddress) {
        this.device = Objects.requireNonNull(device, "device");
        this.context = Objects.requireNonNull(context, "context");
        if (baseAddress < 0 || (baseAddress & (LENGTH - 1)) != 0) {
            throw new IllegalArgumentException("virtio-mmio base 0x" + Long.toHexString(baseAddress) + " is not 0x200-aligned");
        }
        this.base = baseAddress;
        this.offered = device.features() | TRANSPORT_FEATURES;
        int n = device.queueCount();
        if (n < 0) {
            throw new IllegalArgumentException(device.name() + " has a negative queue count " + n);
        }
        List<Virtqueue> qs = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            int max = device.queueMaxSize(i);
            if (max < 1 || max > Virtqueue.MAX_SIZE || Integer.bitCount(max) != 1) {
                throw new IllegalArgumentException(device.name() + ": queue " + i + " max size " + max
                        + " is not a power of two up to " + Virtqueue.MAX_SIZE);
            }
            qs.add(new Virtqueue(max));
        }
        this.queues = List.copyOf(qs);
    }

    @Override
    public String name() {
        return context.name();
    }

    public long baseAddress() {
        return base;
    }

    public VirtioDevice device() {
        return device;
    }

    /** The status register as the driver reads it. */
    public int status() {
        lock.lock();
        try {
            return currentStatus();
        } finally {
            lock.unlock();
        }
    }

    // ---- bus accesses

    @Override
    public long read(long offset, int size) {
        if (offset >= CONFIG && offset < LENGTH) {
            return readConfig((int) (offset - CONFIG), size);
        }
        if (size != 4 || (offset & 3) != 0 || offset < 0 || offset >= CONFIG) {
            return Device.ones(size);
        }
        lock.lock();
        try {
            return readRegister((int) offset) & 0xffffffffL;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void write(long offset, int size, long value) {
        if (offset >= CONFIG && offset < LENGTH) {
            writeConfig((int) (offset - CONFIG), size, value);
            return;
        }
        if (size != 4 || (offset & 3) != 0 || offset < 0 || offset >= CONFIG) {
            return;
        }
        lock.lock();
        try {
            if (!closed) {
                writeRegister((int) offset, (int) value);
            }
        } finally {
            lock.unlock();
        }
    }

    private int readRegister(int offset) {
        Virtqueue q = selectedQueue();
        return switch (offset) {
            case MAGIC_VALUE -> MAGIC;
            case VERSION_REG -> VERSION;
            case DEVICE_ID -> device.deviceType();
            case VENDOR_ID_REG -> VENDOR_ID;
            case DEVICE_FEATURES -> featureWord(offered, deviceFeaturesSel);
            case QUEUE_NUM_MAX -> q == null ? 0 : q.maxSize();
            case QUEUE_READY -> q != null && q.ready() ? 1 : 0;
            case INTERRUPT_STATUS -> interruptStatus.get();
            case STATUS -> currentStatus();
            case SHM_LEN_LOW, SHM_LEN_HIGH, SHM_BASE_LOW, SHM_BASE_HIGH -> -1; // no shared memory regions
            case CONFIG_GENERATION -> configGeneration.get();
            default -> 0; // write-only and reserved registers
        };
    }

    private void writeRegister(int offset, int v) {
        switch (offset) {
            case DEVICE_FEATURES_SEL -> deviceFeaturesSel = v;
            case DRIVER_FEATURES_SEL -> driverFeaturesSel = v;
            case DRIVER_FEATURES -> writeDriverFeatures(v);
            case QUEUE_SEL -> queueSel = v;
            case QUEUE_NOTIFY -> notifyQueue(v);
            case QUEUE_NUM, QUEUE_READY, QUEUE_DESC_LOW, QUEUE_DESC_HIGH, QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH,
                    QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH -> writeQueue(offset, v);
            case INTERRUPT_ACK -> interruptStatus.getAndUpdate(s -> s & ~v);
            case STATUS -> writeStatus(v);
            default -> {} // read-only, SHMSel (no regions) and reserved registers
        }
    }

    private static int featureWord(long features, int sel) {
        return switch (sel) {
            case 0 -> (int) features;
            case 1 -> (int) (features >>> 32);
            default -> 0;
        };
    }

    private void writeDriverFeatures(int v) {
        if ((status & (DRIVER | FEATURES_OK | FAILED)) != DRIVER) {
            return; // features are accepted between DRIVER and FEATURES_OK only
        }
        long word = v & 0xffffffffL;
        switch (driverFeaturesSel) {
            case 0 -> driverFeatures = (driverFeatures & 0xffffffff00000000L) | word;
            case 1 -> driverFeatures = (driverFeatures & 0xffffffffL) | word << 32;
            default -> {} // no features beyond bit 63
        }
    }

    private Virtqueue selectedQueue() {
        return queueSel >= 0 && queueSel < queues.size() ? queues.get(queueSel) : null;
    }

    private void writeQueue(int offset, int v) {
        Virtqueue q = selectedQueue();
        if (q == null || (status & (DRIVER_OK | FAILED)) != 0) {
            return;
        }
        long word = v & 0xffffffffL;
        switch (offset) {
            case QUEUE_NUM -> q.setSize(v);
            case QUEUE_READY -> q.setReady(v == 1);
            case QUEUE_DESC_LOW -> q.setDescriptorTable(low(q.descriptorTable(), word));
            case QUEUE_DESC_HIGH -> q.setDescriptorTable(high(q.descriptorTable(), word));
            case QUEUE_DRIVER_LOW -> q.setAvailableRing(low(q.availableRing(), word));
            case QUEUE_DRIVER_HIGH -> q.setAvailableRing(high(q.availableRing(), word));
            case QUEUE_DEVICE_LOW -> q.setUsedRing(low(q.usedRing(), word));
            case QUEUE_DEVICE_HIGH -> q.setUsedRing(high(q.usedRing(), word));
            default -> throw new AssertionError(offset);
        }
    }

    private static long low(long old, long word) {
        return (old & 0xffffffff00000000L) | word;
    }

    private static long high(long old, long word) {
        return (old & 0xffffffffL) | word << 32;
    }

    private int currentStatus() {
        return status | (needsReset.get() ? DEVICE_NEEDS_RESET : 0);
    }

    // ---- the status state machine

    private void writeStatus(int v) {
        if (v == 0) {
            resetDevice();
            return;
        }
        int want = v & ~DEVICE_NEEDS_RESET; // the device's bit: the driver writing it back changes nothing
        if ((want & FAILED) != 0) {
            status |= FAILED;
            want &= ~FAILED;
        }
        if ((status & FAILED) != 0 || (want & status) != (status & ~FAILED) || (want & ~(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK)) != 0) {
            return; // after FAILED only a reset; never clear a bit; no unknown bits
        }
        int added = want & ~status;
        if (added == 0) {
            return;
        }
        // each new bit needs the ones before it, set now or earlier
        if ((added & DRIVER) != 0 && (want & ACKNOWLEDGE) == 0
                || (added & FEATURES_OK) != 0 && (want & DRIVER) == 0
                || (added & DRIVER_OK) != 0 && (want & FEATURES_OK) == 0) {
            return;
        }
        if ((added & FEATURES_OK) != 0 && !featuresAcceptable()) {
            want &= ~(FEATURES_OK | DRIVER_OK); // the driver reads FEATURES_OK back and gives up
        }
        status = want;
        if ((added & DRIVER_OK) != 0 && (want & DRIVER_OK) != 0) {
            activate();
        }
    }

    private boolean featuresAcceptable() {
        if ((driverFeatures & ~offered) != 0) {
            LOG.log(Level.DEBUG, () -> name() + ": driver accepted features 0x" + Long.toHexString(driverFeatures & ~offered) + " not offered");
            return false;
        }
        if ((driverFeatures & VirtioFeatures.VERSION_1) == 0) {
            LOG.log(Level.DEBUG, () -> name() + ": driver did not accept VERSION_1 (legacy drivers are not supported)");
            return false;
        }
        return true;
    }

    private void activate() {
        if (needsReset.get()) {
            return;
        }
        start().ifPresent(f -> {
            if (f.cause() != null) {
                context.reportFatal(name() + ": " + f.why() + " (" + device.name() + ")", f.cause());
            }
            raiseNeedsReset(f.cause() == null ? f.why() : f.why() + ": " + f.cause());
        });
    }

    /** Why the device could not start: a queue that does not validate, or what threw. */
    private record Failure(String why, RuntimeException cause) {}

    /**
     * Validates the ready queues, makes the notifiers and activates the device with the queues as
     * they stand; empty if it started.
     */
    private Optional<Failure> start() {
        GuestMemory memory = context.memory();
        for (int i = 0; i < queues.size(); i++) {
            Virtqueue q = queues.get(i);
            if (!q.ready()) {
                continue;
            }
            Optional<String> problem = q.validate(memory);
            if (problem.isPresent()) {
                return Optional.of(new Failure("queue " + i + ": " + problem.get(), null));
            }
            q.setFeatures(driverFeatures);
        }
        List<Notifier> notifiers;
        try {
            notifiers = notifiers();
        } catch (RuntimeException e) {
            return Optional.of(new Failure("no queue notifiers", e));
        }
        Activation a = new Activation(driverFeatures, notifiers);
        active = a;
        try {
            device.activate(a);
        } catch (RuntimeException e) {
            return Optional.of(new Failure("activation failed", e));
        }
        return Optional.empty();
    }

    /**
     * One notifier per queue: an ioeventfd where the platform has them, else a plain eventfd. If one
     * cannot be had at all (no descriptors left), those made are closed again.
     */
    private List<Notifier> notifiers() {
        List<Notifier> list = new ArrayList<>(queues.size());
        try {
            for (int i = 0; i < queues.size(); i++) {
                IoEvent io = null;
                try {
                    io = context.ioEvent(AddressSpace.MMIO, base + QUEUE_NOTIFY, 4, OptionalLong.of(i));
                } catch (RuntimeException e) {
                    LOG.log(Level.DEBUG, () -> name() + ": no ioeventfd for queue notifications, they exit to the VMM: " + e);
                }
                list.add(io != null ? new Notifier(io, io.eventFd()) : new Notifier(null, EventFd.nonBlocking()));
            }
        } catch (RuntimeException e) {
            list.forEach(Notifier::close);
            throw e;
        }
        return list;
    }

    private void raiseNeedsReset(String why) {
        LOG.log(Level.WARNING, () -> name() + " (" + device.name() + ") needs a reset: " + why);
        if (!needsReset.getAndSet(true)) {
            interruptStatus.getAndUpdate(s -> s | INT_CONFIG);
            context.irq().pulse();
        }
    }

    /** Stops the device, then puts every register back to its power-on value. */
    private void resetDevice() {
        Activation a = active;
        active = null;
        if (a != null) {
            a.live = false;
        }
        try {
            device.reset();
        } catch (RuntimeException e) {
            context.reportFatal(name() + ": " + device.name() + " failed to reset", e);
        }
        for (Virtqueue q : queues) {
            q.reset();
        }
        if (a != null) {
            a.closeNotifiers();
        }
        status = 0;
        deviceFeaturesSel = 0;
        driverFeaturesSel = 0;
        driverFeatures = 0;
        queueSel = 0;
        needsReset.set(false);
        interruptStatus.set(0);
    }

    /** A notify that reached the bus: no ioeventfd took it (the platform has none, or it was not matched). */
    private void notifyQueue(int index) {
        if (active != null && index >= 0 && index < queues.size()) {
            active.notifiers.get(index).signal();
        }
    }

    // ---- configuration space

    private long readConfig(int offset, int size) {
        if (!configAccess(offset, size)) {
            return Device.ones(size);
        }
        try {
            return device.readConfig(offset, size) & Device.ones(size);
        } catch (RuntimeException e) {
            context.reportFatal(name() + ": " + device.name() + " failed a configuration read", e);
            return Device.ones(size);
        }
    }

    private void writeConfig(int offset, int size, long value) {
        if (!configAccess(offset, size)) {
            return;
        }
        try {
            device.writeConfig(offset, size, value & Device.ones(size));
        } catch (RuntimeException e) {
            context.reportFatal(name() + ": " + device.name() + " failed a configuration write", e);
        }
    }

    private boolean configAccess(int offset, int size) {
        return (size == 1 || size == 2 || size == 4) && offset >= 0 && offset + size <= device.configSize();
    }

    // ---- snapshots

    /** The layout of {@link #saveState}; a state of another is refused. */
    static final int STATE_VERSION = 1;
    private static final int STATUS_BITS = ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK | FAILED;

    /**
     * Writes the transport's registers, the queues and the device's state. Runs with the machine
     * paused: the device is quiesced, so its threads hold no chain.
     *
     * @throws SnapshotException a queue of an active device has chains taken and not returned (the
     *     device did not finish them when it was quiesced), or the device cannot be saved
     */
    @Override
    public void saveState(StateWriter out) {
        lock.lock();
        try {
            if (closed) {
                throw new SnapshotException(name() + " is closed");
            }
            boolean broken = needsReset.get();
            if (active != null && !broken) {
                for (int i = 0; i < queues.size(); i++) {
                    Virtqueue q = queues.get(i);
                    if (q.ready() && q.inFlight() != 0) {
                        throw new SnapshotException(name() + " (" + device.name() + "): queue " + i + " has " + q.inFlight()
                                + " requests taken and not completed; the device did not finish them when it was paused");
                    }
                }
            }
            out.putInt(STATE_VERSION);
            out.putInt(device.deviceType()).putLong(offered).putInt(queues.size());
            for (Virtqueue q : queues) {
                out.putInt(q.maxSize());
            }
            out.putInt(status).putBoolean(broken).putInt(deviceFeaturesSel).putInt(driverFeaturesSel)
                    .putLong(driverFeatures).putInt(queueSel).putInt(interruptStatus.get()).putInt(configGeneration.get());
            for (Virtqueue q : queues) {
                out.putState(q);
            }
            out.putState(device);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Takes back what {@link #saveState} wrote, on a transport of the same device that the machine
     * has not run yet (one that was used is reset first). {@code in} is the transport's block
     * alone ({@link StateReader#getState}), read to its end before the device starts. With DRIVER_OK
     * saved, the device is activated on the restored queues and a pending interrupt raised again.
     *
     * @throws SnapshotException the state is short, corrupted, of another layout or another device;
     *     the transport is then reset and the device not running
     */
    @Override
    public void restoreState(StateReader in) {
        lock.lock();
        try {
            if (closed) {
                throw new IllegalStateException(name() + " is closed");
            }
            if (status != 0 || active != null) {
                resetDevice();
            }
            int version = in.getInt();
            if (version != STATE_VERSION) {
                throw in.bad("layout version " + version + ", not " + STATE_VERSION);
            }
            int type = in.getInt();
            long savedOffered = in.getLong();
            int count = in.getInt();
            if (type != device.deviceType() || savedOffered != offered || count != queues.size()) {
                throw otherDevice(in, "device type " + type + ", features 0x" + Long.toHexString(savedOffered) + ", "
                        + count + " queues");
            }
            for (int i = 0; i < count; i++) {
                int max = in.getInt();
                if (max != queues.get(i).maxSize()) {
                    throw otherDevice(in, "queue " + i + " of at most " + max + " entries");
                }
            }
            int st = in.getInt();
            boolean broken = in.getBoolean();
            int devSel = in.getInt();
            int drvSel = in.getInt();
            long features = in.getLong();
            int sel = in.getInt();
            int interrupts = in.getInt();
            int generation = in.getInt();
            if ((st & ~STATUS_BITS) != 0 || (st & DRIVER) != 0 && (st & ACKNOWLEDGE) == 0
                    || (st & FEATURES_OK) != 0 && (st & DRIVER) == 0 || (st & DRIVER_OK) != 0 && (st & FEATURES_OK) == 0) {
                throw in.bad("device status 0x" + Integer.toHexString(st) + " is not one the driver can set");
            }
            if ((st & FEATURES_OK) != 0 && ((features & ~offered) != 0 || (features & VirtioFeatures.VERSION_1) == 0)) {
                throw in.bad("FEATURES_OK with features 0x" + Long.toHexString(features) + " (offered 0x"
                        + Long.toHexString(offered) + ")");
            }
            if ((interrupts & ~(INT_VRING | INT_CONFIG)) != 0) {
                throw in.bad("interrupt status 0x" + Integer.toHexString(interrupts));
            }
            boolean activate = (st & DRIVER_OK) != 0 && !broken;
            try {
                GuestMemory memory = context.memory();
                for (int i = 0; i < count; i++) {
                    Virtqueue q = queues.get(i);
                    in.getState(q, in.what() + " queue " + i);
                    if (activate && q.ready()) {
                        checkQueue(in, i, q, memory);
                    }
                }
                in.getState(device, in.what() + " (" + device.name() + ")");
                in.expectEnd(); // here, not after the device has started
                status = st;
                deviceFeaturesSel = devSel;
                driverFeaturesSel = drvSel;
                driverFeatures = features;
                queueSel = sel;
                needsReset.set(broken);
                interruptStatus.set(interrupts);
                configGeneration.set(generation);
                if (activate) {
                    Optional<Failure> f = start();
                    if (f.isPresent()) {
                        throw new SnapshotException(name() + " (" + device.name() + ") cannot go on from its snapshot: "
                                + f.get().why(), f.get().cause());
                    }
                }
            } catch (RuntimeException e) {
                resetDevice();
                configGeneration.set(0);
                throw e instanceof SnapshotException se ? se
                        : new SnapshotException(name() + " (" + device.name() + ") could not be restored: " + e, e);
            }
            if (interrupts != 0) {
                context.irq().pulse();
            }
        } finally {
            lock.unlock();
        }
    }

    /** A ready queue of an active device: its rings as DRIVER_OK checks them, and the used index in memory its own. */
    private static void checkQueue(StateReader in, int index, Virtqueue q, GuestMemory memory) {
        Optional<String> problem = q.validate(memory);
        if (problem.isPresent()) {
            throw in.bad("queue " + index + ": " + problem.get());
        }
        int usedIdx = Short.toUnsignedInt(memory.loadAcquire16(q.usedRing() + 2));
        if (usedIdx != q.nextUsed()) {
            throw in.bad("queue " + index + ": the used ring's index in guest memory is " + usedIdx
                    + ", the device's next is " + q.nextUsed() + " (the memory is not this snapshot's)");
        }
    }

    private SnapshotException otherDevice(StateReader in, String saved) {
        StringBuilder here = new StringBuilder("device type " + device.deviceType() + ", features 0x"
                + Long.toHexString(offered) + ", " + queues.size() + " queues of at most");
        for (Virtqueue q : queues) {
            here.append(' ').append(q.maxSize());
        }
        return new SnapshotException("the state of " + in.what() + " is of another device: " + saved + "; this one has " + here);
    }

    // ---- lifecycle

    /** The machine resets: as if the driver wrote status 0. */
    @Override
    public void reset() {
        lock.lock();
        try {
            if (!closed) {
                resetDevice();
            }
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void quiesce() {
        device.quiesce();
    }

    @Override
    public void resume() {
        device.resume();
    }

    /** Resets and closes the device (joining its threads) and removes the ioeventfds. */
    @Override
    public void close() {
        lock.lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            resetDevice();
        } finally {
            lock.unlock();
        }
        device.close();
    }

    @Override
    public String toString() {
        return String.format("%s (virtio-mmio at 0x%x, irq %d, %s)", name(), base, context.irq().gsi(), device.name());
    }

    /** A queue's doorbell: the registered ioeventfd, or a plain eventfd that bus writes signal. */
    private record Notifier(IoEvent ioEvent, EventFd eventFd) {
        void signal() {
            eventFd.signal();
        }

        void close() {
            if (ioEvent != null) {
                ioEvent.close();
            } else {
                eventFd.close();
            }
        }
    }

    /**
     * What the device gets on DRIVER_OK. Dead after the reset that ends it: a call from a device thread
     * that raced the reset is ignored rather than interrupting the driver's next incarnation.
     */
    private final class Activation implements VirtioContext {
        private final long features;
        private final List<Notifier> notifiers;
        private volatile boolean live = true;

        Activation(long features, List<Notifier> notifiers) {
            this.features = features;
            this.notifiers = notifiers;
        }

        @Override
        public GuestMemory memory() {
            return context.memory();
        }

        @Override
        public long features() {
            return features;
        }

        @Override
        public List<Virtqueue> queues() {
            return queues;
        }

        @Override
        public EventFd queueNotifier(int index) {
            return notifiers.get(index).eventFd();
        }

        @Override
        public void signalUsed(int index) {
            if (live && queues.get(index).needsNotification(context.memory())) {
                interruptStatus.getAndUpdate(s -> s | INT_VRING);
                context.irq().pulse();
            }
        }

        @Override
        public void signalConfigChange() {
            if (live) {
                configGeneration.incrementAndGet();
                interruptStatus.getAndUpdate(s -> s | INT_CONFIG);
                context.irq().pulse();
            }
        }

        @Override
        public void needsReset(String why) {
            if (live) {
                raiseNeedsReset(why);
            }
        }

        @Override
        public ThreadFactory threads() {
            return context.threads();
        }

        @Override
        public void reportFatal(String what, Throwable cause) {
            context.reportFatal(what, cause);
        }

        void closeNotifiers() {
            for (Notifier n : notifiers) {
                n.close();
            }
        }
    }
}
