package dev.kindling.devices.pci;

import dev.kindling.device.Device;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.OptionalLong;

/**
 * A minimal PCI host bridge: bus 0 only, one function per slot, configuration mechanism 1 (an address
 * register at 0xcf8, data at 0xcfc-0xcff), the host-bridge function at 00:00.0, and endpoint functions
 * in slots 1-31. It keeps each function's type-0 header (ids, command, BARs and their sizing,
 * interrupt line and pin, the capability list), places BARs in its windows when a function is added
 * (as firmware would: naturally aligned, in order) with memory and I/O decoding on, and follows the
 * guest when it moves one: a BAR decodes while its kind's decode bit is on and it lies wholly inside
 * one of the windows; {@link PciFunction#barPlaced} says each change. Accesses to the windows reach
 * the function whose register BAR holds the address.
 *
 * <p>Legacy interrupts are swizzled as on a real bus: INTx pin {@code p} of slot {@code s} drives
 * IOAPIC pin {@code 16 + (s + p - 1) % 4} ({@link #intxPin}), which the integrator writes into the MP
 * table; the interrupt line register starts at that pin, as firmware leaves it.
 *
 * <p>A guest's access never throws: unknown slots, functions and registers read as ones (or zero),
 * writes to them are ignored; a BAR the guest puts where it cannot be mapped stops decoding.
 * Configuration accesses from several vCPUs are serialized on the bridge.
 */
public final class PciHostBridge implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(PciHostBridge.class.getName());

    public static final int CONFIG_PORT = 0xcf8;
    /** The address register (4 bytes) and the data window (4 bytes). */
    public static final int CONFIG_PORTS = 8;
    public static final int SLOTS = 32;
    /** IOAPIC pin of INTA# of slot 0; INTx uses this pin and the three above it. */
    public static final int FIRST_INTX_PIN = 16;
    /** QEMU's generic PCIe host bridge (hw/pci-host/gpex.c), class host bridge. */
    public static final PciId HOST_BRIDGE_ID = new PciId(0x1b36, 0x0008, 0x06_00_00, 0, 0x1af4, 0x1100);

    static final int COMMAND = 0x04, REVISION_CLASS = 0x08, CACHE_LINE = 0x0c, FIRST_BAR = 0x10, SUBSYSTEM = 0x2c,
            CAPABILITIES = 0x34, INTERRUPT = 0x3c, FIRST_CAPABILITY = 0x40, CONFIG_SIZE = 0x100;
    static final int COMMAND_IO = 1, COMMAND_MEMORY = 2, COMMAND_MASTER = 4, COMMAND_INTX_DISABLE = 1 << 10;
    private static final int COMMAND_WRITABLE = COMMAND_IO | COMMAND_MEMORY | COMMAND_MASTER | COMMAND_INTX_DISABLE;
    private static final int STATUS_INTERRUPT = 1 << 3, STATUS_CAPABILITIES = 1 << 4;
    private static final int ADDRESS_ENABLE = 1 << 31;

    /** A range of guest addresses (or ports) the bridge places BARs in. */
    public record Window(long base, long size) {
        public Window {
            if (base < 0 || size <= 0 || base + size < base) {
                throw new IllegalArgumentException("PCI window at 0x" + Long.toHexString(base) + " of " + size + " bytes");
            }
        }

        boolean holds(long address, long length) {
            return address >= base && length <= size && address - base <= size - length;
        }
    }

    /** Where BAR {@code bar} of the function named {@code function} in {@code slot} decodes now. */
    public record Placement(int slot, String function, int bar, long address, long size, PciBar.Kind kind) {}

    private final Window mmio32, mmio64, io;
    private final Slot[] slots = new Slot[SLOTS];
    private long next32, next64, nextIo; // placement cursors, guarded by this
    private int address; // the configuration address register, guarded by this
    private volatile Route[] routes = new Route[0];
    private boolean closed; // guarded by this

    /** The memory windows must be 4 KiB aligned (BARs smaller than a page still get a page each). */
    public PciHostBridge(Window mmio32, Window mmio64, Window io) {
        this.mmio32 = Objects.requireNonNull(mmio32, "mmio32");
        this.mmio64 = Objects.requireNonNull(mmio64, "mmio64");
        this.io = Objects.requireNonNull(io, "io");
        for (Window w : List.of(mmio32, mmio64)) {
            if ((w.base() | w.size()) % 4096 != 0) {
                throw new IllegalArgumentException(w + " is not 4 KiB aligned");
            }
        }
        if (mmio32.base() + mmio32.size() > 1L << 32) {
            throw new IllegalArgumentException("the 32-bit window " + mmio32 + " ends above 4 GiB");
        }
        if (io.base() + io.size() > 1 << 16) {
            throw new IllegalArgumentException("the I/O window " + io + " ends above port 0xffff");
        }
        next32 = mmio32.base();
        next64 = mmio64.base();
        nextIo = io.base();
        slots[0] = new Slot(0, new HostBridgeFunction(), new long[6], new int[0], null);
    }

    /** IOAPIC pin for INTx {@code pin} (1 = INTA#) of {@code slot}. */
    public static int intxPin(int slot, int pin) {
        if (slot < 0 || slot >= SLOTS || pin < 1 || pin > 4) {
            throw new IllegalArgumentException("PCI slot " + slot + " pin " + pin);
        }
        return FIRST_INTX_PIN + (slot + pin - 1) % 4;
    }

    public Window mmio32Window() {
        return mmio32;
    }

    public Window mmio64Window() {
        return mmio64;
    }

    public Window ioPortWindow() {
        return io;
    }

    /** The slot {@link #add} fills next, or -1 if the bus is full. */
    public synchronized int nextSlot() {
        for (int s = 1; s < SLOTS; s++) {
            if (slots[s] == null) {
                return s;
            }
        }
        return -1;
    }

    /**
     * Puts {@code f} in the next free slot, places its BARs and turns decoding on; returns the slot.
     * The bridge closes {@code f} when it closes. Fails, changing nothing, if the bus is full or a BAR
     * does not fit in its window.
     */
    public synchronized int add(PciFunction f) {
        return add(f, null);
    }

    /**
     * As {@link #add(PciFunction)}, with the INTx# the function raises: the bridge gates it by the
     * command register's Interrupt Disable bit and reports it in the status register.
     */
    public synchronized int add(PciFunction f, PciIntx intx) {
        Objects.requireNonNull(f, "function");
        if (closed) {
            throw new IllegalStateException("the PCI host bridge is closed");
        }
        int slot = nextSlot();
        if (slot < 0) {
            throw new IllegalArgumentException(f.name() + ": all " + (SLOTS - 1) + " PCI slots are taken");
        }
        if (f.interruptPin() < 0 || f.interruptPin() > 4) {
            throw new IllegalArgumentException(f.name() + ": interrupt pin " + f.interruptPin() + " is not in 0-4");
        }
        long[] addresses = new long[6];
        boolean[] used = new boolean[6];
        long n32 = next32, n64 = next64, nIo = nextIo;
        for (PciBar b : f.bars()) {
            int width = b.kind() == PciBar.Kind.MEMORY64 ? 2 : 1;
            for (int i = b.index(); i < b.index() + width; i++) {
                if (used[i]) {
                    throw new IllegalArgumentException(f.name() + ": BAR" + b.index() + " overlaps another BAR");
                }
                used[i] = true;
            }
            long align = b.kind() == PciBar.Kind.IO ? b.size() : Math.max(b.size(), 4096);
            Window w = window(b.kind());
            long at = switch (b.kind()) {
                case MEMORY32 -> n32 = alignUp(n32, align);
                case MEMORY64 -> n64 = alignUp(n64, align);
                case IO -> nIo = alignUp(nIo, align);
            };
            if (!w.holds(at, b.size())) {
                throw new IllegalArgumentException(f.name() + ": BAR" + b.index() + " of " + b.size()
                        + " bytes does not fit in the PCI window " + w);
            }
            switch (b.kind()) {
                case MEMORY32 -> n32 += align;
                case MEMORY64 -> n64 += align;
                case IO -> nIo += align;
            }
            addresses[b.index()] = at;
        }
        int[] capabilityAt = new int[f.capabilities().size()];
        int at = FIRST_CAPABILITY;
        for (int i = 0; i < capabilityAt.length; i++) {
            PciCapability c = f.capabilities().get(i);
            if (c.length() < 4 || c.length() % 4 != 0 || at + c.length() > CONFIG_SIZE) {
                throw new IllegalArgumentException(f.name() + ": capability 0x" + Integer.toHexString(c.id())
                        + " of " + c.length() + " bytes does not fit the configuration space");
            }
            capabilityAt[i] = at;
            at += c.length();
        }
        next32 = n32;
        next64 = n64;
        nextIo = nIo;
        Slot s = new Slot(slot, f, addresses, capabilityAt, intx);
        slots[slot] = s;
        s.command = (hasKind(f, PciBar.Kind.IO) ? COMMAND_IO : 0)
                | (hasKind(f, PciBar.Kind.MEMORY32) || hasKind(f, PciBar.Kind.MEMORY64) ? COMMAND_MEMORY : 0);
        s.interruptLine = f.interruptPin() == 0 ? 0 : intxPin(slot, f.interruptPin());
        decode(s);
        return slot;
    }

    private static boolean hasKind(PciFunction f, PciBar.Kind kind) {
        return f.bars().stream().anyMatch(b -> b.kind() == kind);
    }

    private Window window(PciBar.Kind kind) {
        return switch (kind) {
            case MEMORY32 -> mmio32;
            case MEMORY64 -> mmio64;
            case IO -> io;
        };
    }

    private static long alignUp(long v, long align) {
        return (v + align - 1) & -align;
    }

    /** The endpoint functions, by slot (1 first). */
    public synchronized List<PciFunction> functions() {
        List<PciFunction> out = new ArrayList<>();
        for (int s = 1; s < SLOTS; s++) {
            if (slots[s] != null) {
                out.add(slots[s].function);
            }
        }
        return out;
    }

    /** Every BAR that decodes now, by slot and BAR. */
    public synchronized List<Placement> placements() {
        List<Placement> out = new ArrayList<>();
        for (Slot s : slots) {
            if (s != null) {
                for (PciBar b : s.function.bars()) {
                    if (s.placed[b.index()] >= 0) {
                        out.add(new Placement(s.number, s.function.name(), b.index(), s.placed[b.index()], b.size(), b.kind()));
                    }
                }
            }
        }
        return out;
    }

    /** Where BAR {@code bar} of {@code slot} decodes, or empty. */
    public synchronized OptionalLong placement(int slot, int bar) {
        return placements().stream().filter(p -> p.slot() == slot && p.bar() == bar)
                .mapToLong(Placement::address).findFirst();
    }

    /** The configuration ports, to attach at {@link #CONFIG_PORT} for {@link #CONFIG_PORTS}; it quiesces the functions. */
    public Device configPorts() {
        return new Device() {
            @Override
            public String name() {
                return "pci-config";
            }

            @Override
            public long read(long offset, int size) {
                return readConfigPort(offset, size);
            }

            @Override
            public void write(long offset, int size, long value) {
                writeConfigPort(offset, size, value);
            }

            @Override
            public void quiesce() {
                functions().forEach(PciFunction::quiesce);
            }

            @Override
            public void resume() {
                functions().forEach(PciFunction::resume);
            }
        };
    }

    /** The 32-bit memory window, to attach at its base (offsets are relative to it). */
    public Device mmioWindow() {
        return windowDevice("pci-mmio32", mmio32, false);
    }

    /** The 64-bit memory window, to attach at its base. */
    public Device highMmioWindow() {
        return windowDevice("pci-mmio64", mmio64, false);
    }

    /** The I/O port window, to attach at its base. */
    public Device ioWindow() {
        return windowDevice("pci-io", io, true);
    }

    private Device windowDevice(String name, Window w, boolean ioSpace) {
        return new Device() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public long read(long offset, int size) {
                Route r = route(w.base() + offset, size, ioSpace);
                return r == null ? Device.ones(size) : r.function.readBar(r.bar, w.base() + offset - r.start, size);
            }

            @Override
            public void write(long offset, int size, long value) {
                Route r = route(w.base() + offset, size, ioSpace);
                if (r != null) {
                    r.function.writeBar(r.bar, w.base() + offset - r.start, size, value);
                }
            }
        };
    }

    private Route route(long address, int size, boolean ioSpace) {
        for (Route r : routes) {
            if (r.io == ioSpace && address >= r.start && address - r.start <= r.size - size) {
                return r;
            }
        }
        return null;
    }

    // --- configuration mechanism 1 -------------------------------------------------------------

    private synchronized long readConfigPort(long offset, int size) {
        if (offset == 0 && size == 4) {
            return address & 0xffff_ffffL;
        }
        if (offset < 4 || offset + size > CONFIG_PORTS) {
            return Device.ones(size);
        }
        Slot s = addressed();
        if (s == null) {
            return Device.ones(size);
        }
        int reg = (address & 0xfc) + (int) (offset - 4);
        long dword = readDword(s, reg & ~3) & 0xffff_ffffL;
        return (dword >>> ((reg & 3) * 8)) & Device.ones(size);
    }

    private synchronized void writeConfigPort(long offset, int size, long value) {
        if (offset == 0 && size == 4) {
            address = (int) value & (ADDRESS_ENABLE | 0x00ff_fffc);
            return;
        }
        if (offset < 4 || offset + size > CONFIG_PORTS) {
            return; // sub-dword writes of the address register are not mechanism 1 (Linux probes with one)
        }
        Slot s = addressed();
        if (s != null) {
            writeConfig(s, (address & 0xfc) + (int) (offset - 4), size, value);
        }
    }

    /** The slot the address register selects: enabled, bus 0, function 0, occupied. */
    private Slot addressed() {
        if ((address & ADDRESS_ENABLE) == 0 || (address >>> 16 & 0xff) != 0 || (address >>> 8 & 7) != 0) {
            return null;
        }
        return slots[address >>> 11 & 0x1f];
    }

    /** Reads configuration register {@code reg} (4-aligned) of {@code s}. */
    private int readDword(Slot s, int reg) {
        PciFunction f = s.function;
        PciId id = f.id();
        if (reg >= FIRST_CAPABILITY) {
            return readCapability(s, reg);
        }
        return switch (reg) {
            case 0x00 -> id.deviceId() << 16 | id.vendorId();
            case COMMAND -> ((s.capabilityAt.length > 0 ? STATUS_CAPABILITIES : 0)
                    | (s.intx != null && s.intx.level() ? STATUS_INTERRUPT : 0)) << 16 | s.command;
            case REVISION_CLASS -> id.classCode() << 8 | id.revision();
            case CACHE_LINE -> s.latency << 8 | s.cacheLine; // header type 0, no BIST
            case SUBSYSTEM -> id.subsystemId() << 16 | id.subsystemVendorId();
            case CAPABILITIES -> s.capabilityAt.length > 0 ? s.capabilityAt[0] : 0;
            case INTERRUPT -> f.interruptPin() << 8 | s.interruptLine;
            default -> reg >= FIRST_BAR && reg < FIRST_BAR + 24 ? readBarRegister(s, (reg - FIRST_BAR) / 4) : 0;
        };
    }

    private int readBarRegister(Slot s, int index) {
        PciBar low = s.bar(index);
        if (low != null) {
            long mask = -low.size();
            int flags = switch (low.kind()) {
                case IO -> 1;
                case MEMORY32 -> low.prefetchable() ? 8 : 0;
                case MEMORY64 -> 4 | (low.prefetchable() ? 8 : 0);
            };
            return (int) (s.addresses[index] & mask) | flags;
        }
        PciBar high = s.bar(index - 1);
        if (high != null && high.kind() == PciBar.Kind.MEMORY64) {
            return (int) ((s.addresses[index - 1] & -high.size()) >>> 32);
        }
        return 0;
    }

    private int readCapability(Slot s, int reg) {
        for (int i = 0; i < s.capabilityAt.length; i++) {
            PciCapability c = s.function.capabilities().get(i);
            int start = s.capabilityAt[i];
            if (reg >= start && reg < start + c.length()) {
                if (reg > start) {
                    return (int) c.read(reg - start, 4);
                }
                int next = i + 1 < s.capabilityAt.length ? s.capabilityAt[i + 1] : 0;
                return (int) c.read(2, 2) << 16 | next << 8 | c.id();
            }
        }
        return 0;
    }

    private void writeConfig(Slot s, int reg, int size, long value) {
        if (reg >= FIRST_CAPABILITY) {
            writeCapability(s, reg, size, value);
            return;
        }
        int dwordReg = reg & ~3, shift = (reg & 3) * 8;
        long mask = Device.ones(size) << shift;
        int merged = (int) (readDword(s, dwordReg) & ~mask | (value << shift) & mask);
        switch (dwordReg) {
            case COMMAND -> {
                if ((mask & 0xffff) != 0) {
                    s.command = merged & COMMAND_WRITABLE;
                    if (s.intx != null) {
                        s.intx.disable((s.command & COMMAND_INTX_DISABLE) != 0);
                    }
                    decode(s);
                }
            }
            case CACHE_LINE -> {
                s.cacheLine = merged & 0xff;
                s.latency = merged >>> 8 & 0xff;
            }
            case INTERRUPT -> s.interruptLine = merged & 0xff;
            default -> {
                if (dwordReg >= FIRST_BAR && dwordReg < FIRST_BAR + 24) {
                    writeBarRegister(s, (dwordReg - FIRST_BAR) / 4, merged);
                }
            }
        }
    }

    private void writeBarRegister(Slot s, int index, int value) {
        PciBar low = s.bar(index);
        if (low != null) {
            long keep = low.kind() == PciBar.Kind.MEMORY64 ? s.addresses[index] & 0xffff_ffff_0000_0000L : 0;
            s.addresses[index] = (keep | value & 0xffff_ffffL) & -low.size();
            decode(s);
            return;
        }
        PciBar high = s.bar(index - 1);
        if (high != null && high.kind() == PciBar.Kind.MEMORY64) {
            s.addresses[index - 1] = ((long) value << 32 | s.addresses[index - 1] & 0xffff_ffffL) & -high.size();
            decode(s);
        }
    }

    private void writeCapability(Slot s, int reg, int size, long value) {
        for (int i = 0; i < s.capabilityAt.length; i++) {
            PciCapability c = s.function.capabilities().get(i);
            int offset = reg - s.capabilityAt[i];
            if (offset >= 0 && offset < c.length()) {
                if (offset < 2) { // id and next pointer are read-only
                    int skip = Math.min(size, 2 - offset);
                    value >>>= 8 * skip;
                    size -= skip;
                    offset += skip;
                }
                if (size > 0 && offset + size <= c.length()) {
                    c.write(offset, size, value);
                }
                return;
            }
        }
    }

    /** Re-derives where each BAR of {@code s} decodes and tells the function what changed. */
    private void decode(Slot s) {
        boolean changed = false;
        for (PciBar b : s.function.bars()) {
            int i = b.index();
            long at = s.addresses[i];
            boolean on = (s.command & (b.kind() == PciBar.Kind.IO ? COMMAND_IO : COMMAND_MEMORY)) != 0
                    && (b.kind() == PciBar.Kind.IO ? io.holds(at, b.size())
                            : mmio32.holds(at, b.size()) || mmio64.holds(at, b.size()));
            long want = on ? at : -1;
            if (want == s.placed[i]) {
                continue;
            }
            changed = true;
            s.placed[i] = want;
            try {
                s.function.barPlaced(i, on ? OptionalLong.of(at) : OptionalLong.empty());
            } catch (RuntimeException e) {
                // The guest put a memory BAR where it cannot be mapped (over another one): it stops decoding.
                LOG.log(Level.WARNING, s.function.name() + ": BAR" + i + " at 0x" + Long.toHexString(at)
                        + " cannot be mapped; it does not decode", e);
                s.placed[i] = -1;
                s.function.barPlaced(i, OptionalLong.empty());
            }
        }
        if (changed) {
            List<Route> r = new ArrayList<>();
            for (Slot slot : slots) {
                if (slot != null) {
                    for (PciBar b : slot.function.bars()) {
                        if (slot.placed[b.index()] >= 0) {
                            r.add(new Route(slot.placed[b.index()], b.size(), b.kind() == PciBar.Kind.IO,
                                    slot.function, b.index()));
                        }
                    }
                }
            }
            routes = r.toArray(Route[]::new);
        }
    }

    /** Closes the functions, last added first. */
    @Override
    public void close() {
        List<PciFunction> fs;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            routes = new Route[0];
            fs = functions().reversed();
        }
        RuntimeException failure = null;
        for (PciFunction f : fs) {
            try {
                f.close();
            } catch (RuntimeException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    private record Route(long start, long size, boolean io, PciFunction function, int bar) {}

    /** A slot's function and the header state the bridge keeps for it. Guarded by the bridge. */
    private static final class Slot {
        final int number;
        final PciFunction function;
        final long[] addresses; // BAR register values by index (a 64-bit BAR at its low index)
        final long[] placed = {-1, -1, -1, -1, -1, -1}; // where each BAR decodes, -1: nowhere
        final int[] capabilityAt;
        final PciIntx intx; // null: the function's INTx# is not the bridge's to gate
        int command, cacheLine, latency, interruptLine;

        Slot(int number, PciFunction function, long[] addresses, int[] capabilityAt, PciIntx intx) {
            this.number = number;
            this.function = function;
            this.addresses = addresses;
            this.capabilityAt = capabilityAt;
            this.intx = intx;
        }

        PciBar bar(int index) {
            if (index < 0) {
                return null;
            }
            for (PciBar b : function.bars()) {
                if (b.index() == index) {
                    return b;
                }
            }
            return null;
        }
    }

    /** 00:00.0: ids and class only. */
    private static final class HostBridgeFunction implements PciFunction {
        @Override
        public String name() {
            return "pci-host";
        }

        @Override
        public PciId id() {
            return HOST_BRIDGE_ID;
        }

        @Override
        public List<PciBar> bars() {
            return List.of();
        }

        @Override
        public int interruptPin() {
            return 0;
        }

        @Override
        public List<PciCapability> capabilities() {
            return List.of();
        }

        @Override
        public long readBar(int bar, long offset, int size) {
            return Device.ones(size);
        }

        @Override
        public void writeBar(int bar, long offset, int size, long value) {}

        @Override
        public void barPlaced(int bar, OptionalLong address) {}
    }
}
