package dev.kindling.devices.vfio;

import dev.kindling.device.Device;
import dev.kindling.device.DeviceContext;
import dev.kindling.device.Threads;
import dev.kindling.irq.IrqLine;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.memory.MemorySlot;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Poller;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * A host platform device in the guest, as QEMU's vfio-platform gives it: its regions one after
 * another from the device's guest address, each at a page boundary ({@link #layout}); mmap-able ones
 * mapped straight into the guest (a memory slot: accesses never leave the hypervisor), the others
 * trapped here and forwarded to the backend. Interrupt i raises GSI {@code firstGsi + i}:
 * <ul>
 *   <li>in the hypervisor, where it owns the interrupt controller and {@code irqfd} is on: the
 *       backend's trigger eventfd is an irqfd and, for a level interrupt, the irqfd's resample
 *       eventfd is the backend's unmask eventfd, so an interrupt and its acknowledgement never leave
 *       the kernel ({@link Path#KERNEL});
 *   <li>else through this device's thread: a trigger raises the line, and a level one is lowered and
 *       unmasked when the guest ends it, on the interrupt controller's end-of-interrupt notice
 *       ({@link Path#EOI}, the split irqchip's way);
 *   <li>with {@code irqfd} off, level interrupts take QEMU's slow path ({@link Path#SLOW}): while one
 *       is pending the mappings are off, so the guest's first access to the device (its handler
 *       reading or acknowledging) traps; that lowers the line and unmasks it, and the mappings come
 *       back {@code mmapTimeout} after the last interrupt ended.
 * </ul>
 * A guest that never acknowledges an interrupt leaves it pending: nothing of the host waits for it.
 * The device resets the host device on a machine reset and on close.
 */
public final class VfioPlatformDevice implements Device {
    private static final System.Logger LOG = System.getLogger(VfioPlatformDevice.class.getName());
    public static final long PAGE = 4096;
    private static final Duration JOIN = Duration.ofSeconds(5);

    /** How an interrupt reaches the guest. */
    public enum Path {
        /** An irqfd (with resample into the backend's unmask, for a level interrupt): no thread of ours. */
        KERNEL,
        /** This device's thread raises the line; the end-of-interrupt notice lowers and unmasks it. */
        EOI,
        /** This device's thread raises the line and turns mappings off; the next trapped access acknowledges. */
        SLOW,
        /** An edge through this device's thread. */
        EDGE
    }

    private final DeviceContext context;
    private final PlatformDeviceBackend backend;
    private final VfioPlatformOptions options;
    private final long guestAddress;
    private final List<PlatformDeviceBackend.Region> regions;
    private final long[] offsets;
    private final long windowSize;
    private final List<Wire> wires = new ArrayList<>();
    private final EventFd wake;
    private Thread relay; // set by start, before anything else sees the device

    // guarded by this
    private final MemorySlot[] slots;
    private boolean mapped;
    private long remapAt; // System.nanoTime() at which the slow path maps again, 0: not scheduled
    private boolean paused;
    private boolean closed;
    private long trapped;

    /** One interrupt of the device and its path to the guest. */
    private final class Wire {
        final int index;
        final int gsi;
        final boolean level;
        Path path;
        final EventFd trigger;
        EventFd unmask; // KERNEL and level
        AutoCloseable registration; // the irqfd (KERNEL) or the end-of-interrupt listener (EOI)
        IrqLine line; // the relayed paths
        boolean active; // guarded by the device: raised, not yet ended (EOI, SLOW)

        Wire(PlatformDeviceBackend.Irq irq, int gsi) {
            this.index = irq.index();
            this.gsi = gsi;
            this.level = irq.level();
            this.trigger = EventFd.nonBlocking();
        }

        void close() {
            if (registration != null) {
                try {
                    registration.close();
                } catch (Exception e) {
                    LOG.log(Level.WARNING, name() + ": removing the interrupt wiring of GSI " + gsi + " failed", e);
                }
                registration = null;
            }
        }
    }

    private VfioPlatformDevice(DeviceContext context, long guestAddress, PlatformDeviceBackend backend,
                               VfioPlatformOptions options) {
        this.context = context;
        this.backend = backend;
        this.options = options;
        this.guestAddress = guestAddress;
        this.regions = backend.regions();
        this.offsets = layout(regions);
        this.windowSize = windowSize(regions);
        this.slots = new MemorySlot[regions.size()];
        this.wake = EventFd.nonBlocking();
    }

    /** Wires the interrupts, offers guest RAM for DMA, maps the regions and starts the relay. */
    private void start(int firstGsi) {
        List<PlatformDeviceBackend.Irq> irqs = backend.irqs();
        for (int i = 0; i < irqs.size(); i++) {
            Wire w = new Wire(irqs.get(i), firstGsi + i);
            wires.add(w);
            wire(w);
        }
        for (MemoryRegion ram : context.memory().regions()) {
            backend.mapDma(ram.guestAddress(), ram.segment());
        }
        synchronized (this) {
            map();
        }
        if (wires.stream().anyMatch(w -> w.path != Path.KERNEL)) {
            relay = context.threads().newThread(this::relay);
            relay.start();
        }
    }

    /**
     * The device at {@code guestAddress} (page-aligned), its interrupts from GSI {@code firstGsi} on.
     * Takes {@code backend}, which it closes, also when this fails.
     */
    public static VfioPlatformDevice create(DeviceContext context, long guestAddress, int firstGsi,
                                            PlatformDeviceBackend backend, VfioPlatformOptions options) {
        Objects.requireNonNull(backend, "backend");
        VfioPlatformDevice d = null;
        try {
            Objects.requireNonNull(context, "context");
            Objects.requireNonNull(options, "options");
            if (guestAddress % PAGE != 0) {
                throw new IllegalArgumentException(backend.name() + ": guest address 0x" + Long.toHexString(guestAddress)
                        + " is not page-aligned");
            }
            d = new VfioPlatformDevice(context, guestAddress, backend, options);
            d.start(firstGsi);
            return d;
        } catch (RuntimeException | Error e) {
            try {
                if (d != null) {
                    d.close(); // undoes what start did, and closes the backend
                } else {
                    backend.close();
                }
            } catch (RuntimeException c) {
                e.addSuppressed(c);
            }
            throw e;
        }
    }

    /** Where each region starts in the device's window: one after another, each at a page boundary. */
    public static long[] layout(List<PlatformDeviceBackend.Region> regions) {
        long[] at = new long[regions.size()];
        long next = 0;
        for (int i = 0; i < regions.size(); i++) {
            at[i] = next;
            next = Math.addExact(next, pages(regions.get(i).size()));
        }
        return at;
    }

    /** The guest-physical bytes the device takes: its regions, each rounded up to whole pages. */
    public static long windowSize(List<PlatformDeviceBackend.Region> regions) {
        long size = 0;
        for (PlatformDeviceBackend.Region r : regions) {
            size = Math.addExact(size, pages(r.size()));
        }
        return size;
    }

    /** {@code size} rounded up to whole pages. */
    static long pages(long size) {
        return Math.addExact(size, PAGE - 1) & -PAGE;
    }

    /** Wires {@code w} by the fastest path the options and the interrupt service allow. */
    private void wire(Wire w) {
        w.path = w.level ? Path.SLOW : Path.EDGE;
        if (options.irqfd()) {
            if (w.level) {
                w.unmask = EventFd.nonBlocking();
            }
            try {
                w.registration = context.interrupts().irqfd(w.gsi, w.trigger, w.unmask);
                w.path = Path.KERNEL;
            } catch (UnsupportedOperationException e) {
                // the split irqchip: Kindling's IOAPIC tells the end of each interrupt
                if (w.unmask != null) {
                    w.unmask.close();
                    w.unmask = null;
                }
            }
            if (w.path == Path.KERNEL && w.level) {
                backend.setUnmaskEventFd(w.index, w.unmask);
            }
        }
        if (w.path != Path.KERNEL) {
            w.line = context.interrupts().line(w.gsi);
        }
        if (w.path == Path.SLOW && options.irqfd()) {
            try {
                w.registration = context.interrupts().onEndOfInterrupt(w.gsi, () -> ended(w));
                w.path = Path.EOI;
            } catch (UnsupportedOperationException e) {
                // no end-of-interrupt notices either (KVM's irqchip without resampling): QEMU's slow path
            }
        }
        backend.setTrigger(w.index, w.trigger);
    }

    /** How interrupt {@code index} reaches the guest. */
    public Path path(int index) {
        return wires.get(index).path;
    }

    /** Whether the mmap-able regions are mapped into the guest now (the slow path turns them off). */
    public synchronized boolean mapped() {
        return mapped;
    }

    /** Guest accesses that trapped here (not mapped, or mappings off) since the device was made. */
    public synchronized long trappedAccesses() {
        return trapped;
    }

    public long windowSize() {
        return windowSize;
    }

    @Override
    public String name() {
        return context.name();
    }

    // ---- the window: trapped accesses

    @Override
    public long read(long offset, int size) {
        int r = regionAt(offset, size);
        long v = r < 0 || !regions.get(r).readable() ? Device.ones(size) : backend.read(r, offset - offsets[r], size);
        acknowledgeOnAccess();
        return v;
    }

    @Override
    public void write(long offset, int size, long value) {
        int r = regionAt(offset, size);
        if (r >= 0 && regions.get(r).writable()) {
            backend.write(r, offset - offsets[r], size, value);
        }
        acknowledgeOnAccess();
    }

    private int regionAt(long offset, int size) {
        for (int i = 0; i < regions.size(); i++) {
            if (offset >= offsets[i] && offset - offsets[i] <= regions.get(i).size() - size) {
                return i;
            }
        }
        return -1;
    }

    /**
     * The slow path's acknowledgement: an access while an interrupt is pending ends it, after the
     * access (as QEMU does), so that an acknowledging write reaches the device before the unmask.
     */
    private void acknowledgeOnAccess() {
        List<Wire> ended = new ArrayList<>();
        synchronized (this) {
            trapped++;
            for (Wire w : wires) {
                if (w.path == Path.SLOW && w.active) {
                    w.active = false;
                    w.line.set(false);
                    ended.add(w);
                }
            }
            if (!ended.isEmpty()) {
                remapAt = System.nanoTime() + options.mmapTimeout().toNanos();
            }
        }
        for (Wire w : ended) {
            unmask(w);
        }
        if (!ended.isEmpty()) {
            wake.signal(); // the relay times the remap
        }
    }

    /** The end-of-interrupt notice of an EOI-path wire: the guest serviced it. */
    private void ended(Wire w) {
        synchronized (this) {
            if (closed || !w.active) {
                return;
            }
            w.active = false;
            w.line.set(false);
        }
        unmask(w);
    }

    private void unmask(Wire w) {
        try {
            backend.unmask(w.index);
        } catch (RuntimeException e) {
            context.reportFatal(name() + ": unmasking interrupt " + w.index + " failed", e);
        }
    }

    // ---- mappings (guarded by this)

    private void map() {
        if (mapped || closed || options.noMmap()) {
            return;
        }
        for (int i = 0; i < regions.size(); i++) {
            PlatformDeviceBackend.Region r = regions.get(i);
            if (r.mmappable()) {
                slots[i] = context.mapMemory(guestAddress + offsets[i], backend.map(i).asSlice(0, pages(r.size())),
                        !r.writable());
            }
        }
        mapped = true;
    }

    private void unmap() {
        for (int i = 0; i < slots.length; i++) {
            if (slots[i] != null) {
                slots[i].close();
                slots[i] = null;
            }
        }
        mapped = false;
    }

    // ---- the relay thread: triggers of the EOI, SLOW and EDGE paths, and the slow path's remap

    private void relay() {
        List<Fd> fds = new ArrayList<>();
        List<Wire> relayed = new ArrayList<>();
        fds.add(wake.fd());
        for (Wire w : wires) {
            if (w.path != Path.KERNEL) {
                fds.add(w.trigger.fd());
                relayed.add(w);
            }
        }
        try {
            while (true) {
                int timeout;
                synchronized (this) {
                    while (paused && !closed) {
                        wait();
                    }
                    if (closed) {
                        return;
                    }
                    timeout = remapTimeout();
                }
                Poller.waitAny(fds, timeout);
                synchronized (this) {
                    if (closed) {
                        return;
                    }
                    if (paused) {
                        continue; // the signals stay in their eventfds for after resume
                    }
                    wake.read();
                    for (Wire w : relayed) { // every ready one, so a busy interrupt starves no other
                        if (w.trigger.read() > 0) {
                            raise(w);
                        }
                    }
                    if (remapAt != 0 && System.nanoTime() - remapAt >= 0 && wires.stream().noneMatch(x -> x.active)) {
                        remapAt = 0;
                        map();
                    }
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            if (!closed) {
                context.reportFatal(name() + ": the interrupt relay failed", e);
            }
        }
    }

    private int remapTimeout() {
        if (remapAt == 0) {
            return -1;
        }
        return (int) Math.max(0, Math.min(Integer.MAX_VALUE, (remapAt - System.nanoTime()) / 1_000_000 + 1));
    }

    /** A trigger came (guarded by this). */
    private void raise(Wire w) {
        switch (w.path) {
            case EDGE -> w.line.pulse();
            case EOI -> {
                w.active = true;
                w.line.set(true);
            }
            case SLOW -> {
                remapAt = 0;
                unmap(); // first, as QEMU does: the guest's acknowledging access must trap
                w.active = true;
                w.line.set(true);
            }
            case KERNEL -> throw new AssertionError("a kernel-path interrupt reached the relay");
        }
    }

    // ---- life cycle

    @Override
    public synchronized void quiesce() {
        paused = true;
    }

    @Override
    public synchronized void resume() {
        paused = false;
        notifyAll();
    }

    @Override
    public void reset() {
        synchronized (this) {
            for (Wire w : wires) {
                if (w.active) {
                    w.active = false;
                    w.line.set(false);
                }
            }
            remapAt = 0;
        }
        backend.reset();
        for (Wire w : wires) {
            if (w.level) {
                unmask(w);
            }
        }
        synchronized (this) {
            map();
        }
    }

    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            notifyAll();
        }
        wake.signal();
        boolean stopped = Threads.join(relay, JOIN);
        if (!stopped) {
            LOG.log(Level.WARNING, "{0}: the interrupt relay did not stop within {1} s", name(), JOIN.toSeconds());
        }
        for (Wire w : wires) {
            w.close(); // the irqfds go before the eventfds they use
        }
        synchronized (this) {
            unmap();
        }
        try {
            backend.reset();
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, name() + ": resetting the host device failed", e);
        }
        try {
            backend.close();
        } finally {
            if (stopped) {
                for (Wire w : wires) {
                    w.trigger.close();
                    if (w.unmask != null) {
                        w.unmask.close();
                    }
                }
                wake.close();
            }
        }
    }

    @Override
    public String toString() {
        return name() + " (vfio-platform " + backend.name() + " at 0x" + Long.toHexString(guestAddress) + ")";
    }
}
