package dev.kindling.devices.legacy;

import dev.kindling.bus.BusRange;
import dev.kindling.device.Device;
import dev.kindling.irq.IrqLine;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.Future;
import java.util.function.Supplier;

/**
 * An 82093AA-style I/O APIC, version 0x20, with 24 pins, on the MMIO bus at {@link #BASE}
 * (a {@link #LENGTH}-byte window): IOREGSEL at offset 0x00 (1-, 2- or 4-byte accesses), IOWIN at 0x10
 * and the EOI register at 0x40 (4-byte accesses). Indirect registers: 0x00 ID (bits 24-27), 0x01
 * version (0x00170020: version 0x20, highest entry 23), 0x02 arbitration ID, 0x10-0x3f the
 * redirection table, two dwords per pin. Every pin starts masked.
 *
 * <p><b>Inputs.</b> {@link #line(int)} is pin {@code n} as an {@link IrqLine} ({@code gsi() == n};
 * ISA IRQ 0 is conventionally wired to pin 2). {@code set(true)} asserts the pin; polarity (bit 13) is
 * stored for the guest but the line's level is taken as already active-high. An edge-triggered pin
 * delivers once per rising edge ({@code pulse()}, or {@code set(false)} then {@code set(true)}). An
 * edge on a masked pin stays pending (in IRR, one at most) and is delivered when the guest unmasks the
 * pin, so no edge is lost while a guest reprograms a pin (the 82093AA drops it). A level-triggered pin
 * delivers when asserted, unmasked and Remote IRR is clear, and sets Remote IRR;
 * {@link #endOfInterrupt(int)} (KVM's {@code KVM_EXIT_IOAPIC_EOI}, or a write of the vector to the EOI
 * register) clears Remote IRR on the level-triggered pins with that vector, tells
 * {@link MsiSink#endOfInterrupt} with the IOAPIC's lock released, and then delivers again if the pin is
 * still asserted.
 *
 * <p><b>Output.</b> Each delivery is an MSI to {@link MsiSink}, as QEMU's IOAPIC sends with a split
 * irqchip: address {@code 0xfee00000 | dest << 12 | extDest << 5 | destMode << 2} (extDest: entry
 * bits 49-55, the extended destination ID, zero for ordinary guests), data
 * {@code vector | deliveryMode << 8 | trigger << 15}. The sink's {@code deliver} and {@code routeChanged}
 * are called with the IOAPIC's lock held (so routes change in the guest's order); its
 * {@code endOfInterrupt} without it.
 *
 * <p><b>Storms.</b> Nothing is re-sent without a guest action: a guest that never sends EOI gets one
 * interrupt per level-triggered assertion. A guest that EOIs without quietening the device gets the
 * interrupt again at once, up to 10000 times in a row; after that the next one is delayed 10 ms (as
 * QEMU does), from a daemon timer thread that {@link #close()} stops.
 *
 * <p>Other offsets and sizes read as all ones and ignore writes.
 */
public final class IoApic implements Device, BusMapped, Stateful {
    public static final long BASE = 0xfec00000L;
    public static final int LENGTH = 0x1000;
    public static final int PINS = 24;
    public static final int VERSION = 0x20;

    static final int IOREGSEL = 0x00;
    static final int IOWIN = 0x10;
    static final int EOI = 0x40;

    static final int REG_ID = 0x00;
    static final int REG_VERSION = 0x01;
    static final int REG_ARBITRATION = 0x02;
    static final int REG_TABLE = 0x10;

    static final long VECTOR = 0xffL;
    static final int DELIVERY_MODE_SHIFT = 8;
    static final int DEST_MODE_SHIFT = 11;
    static final long DELIVERY_STATUS = 1L << 12;
    static final long POLARITY_LOW = 1L << 13;
    static final long REMOTE_IRR = 1L << 14;
    static final long TRIGGER_LEVEL = 1L << 15;
    static final long MASKED = 1L << 16;
    static final long READ_ONLY = DELIVERY_STATUS | REMOTE_IRR;

    static final long MSI_BASE = 0xfee00000L;
    static final int STORM_LIMIT = 10_000;
    static final long STORM_DELAY_NANOS = 10_000_000;

    private final String name;
    private final MsiSink sink;
    private final Supplier<DeviceTimer> timers;
    private final IrqLine[] lines = new IrqLine[PINS];

    // guarded by this
    private int id;
    private int regsel;
    private final long[] table = new long[PINS];
    /** Pins with a request to service: asserted level pins, and edges not yet sent (pending while masked). */
    private int irr;
    /** The input level of every pin. */
    private int inputs;
    private final int[] successiveEois = new int[PINS];
    private DeviceTimer timer;
    private Future<?> delayedService;
    private boolean closed;

    public IoApic(MsiSink sink) {
        this("ioapic", 0, sink);
    }

    /**
     * @param id the initial APIC ID (bits 24-27 of register 0), as the MP table announces it
     * @param sink where interrupts go
     */
    public IoApic(String name, int id, MsiSink sink) {
        this(name, id, sink, () -> LegacyIo.timerThread(name + "-storm"));
    }

    /** With the storm timer made by {@code timers}, when first needed: tests pass a hand-stepped one. */
    IoApic(String name, int id, MsiSink sink, Supplier<DeviceTimer> timers) {
        this.name = Objects.requireNonNull(name, "name");
        this.sink = Objects.requireNonNull(sink, "sink");
        this.timers = Objects.requireNonNull(timers, "timers");
        this.id = id & 0xf;
        for (int i = 0; i < PINS; i++) {
            int pin = i;
            table[i] = MASKED;
            lines[i] = IrqLines.pin(pin, level -> setPin(pin, level));
        }
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public List<BusRange> busRanges() {
        return List.of(new BusRange(BASE, LENGTH, this));
    }

    /** Pin {@code pin} (0-23) as an interrupt line. */
    public IrqLine line(int pin) {
        Objects.checkIndex(pin, PINS);
        return lines[pin];
    }

    @Override
    public synchronized long read(long offset, int size) {
        if (offset == IOREGSEL && (size == 1 || size == 2 || size == 4)) {
            return regsel;
        }
        if (offset == IOWIN && size == 4) {
            return readIndirect(regsel) & 0xffffffffL;
        }
        return LegacyIo.unclaimed(size);
    }

    @Override
    public void write(long offset, int size, long value) {
        if (offset == EOI && size == 4) {
            endOfInterrupt((int) value & 0xff); // takes the lock itself: the notices run outside it
            return;
        }
        synchronized (this) {
            if (offset == IOREGSEL && (size == 1 || size == 2 || size == 4)) {
                regsel = (int) value & 0xff;
            } else if (offset == IOWIN && size == 4) {
                writeIndirect(regsel, (int) value);
            }
        }
    }

    /**
     * The local APIC signalled EOI for {@code vector}: clears Remote IRR of the level-triggered pins
     * programmed with it; then, without the lock, reports each such pin to
     * {@link MsiSink#endOfInterrupt(int)}, whose listeners may quieten the device; then delivers again
     * for each such pin still asserted (as KVM's and QEMU's IOAPICs notify before they re-evaluate,
     * so an interrupt the listener ended is not sent twice).
     */
    public void endOfInterrupt(int vector) {
        int ended = clearRemoteIrr(vector);
        for (int pin = 0, left = ended; left != 0; pin++, left >>>= 1) {
            if ((left & 1) != 0) {
                sink.endOfInterrupt(pin);
            }
        }
        if (ended != 0) {
            redeliver(ended);
        }
    }

    /** The pins whose Remote IRR an EOI for {@code vector} cleared, as a bit mask. */
    private synchronized int clearRemoteIrr(int vector) {
        int ended = 0;
        for (int pin = 0; pin < PINS; pin++) {
            long e = table[pin];
            if ((e & VECTOR) != (vector & 0xff) || (e & TRIGGER_LEVEL) == 0 || (e & REMOTE_IRR) == 0) {
                continue;
            }
            ended |= 1 << pin;
            table[pin] = e & ~REMOTE_IRR;
        }
        return ended;
    }

    /** After the EOI notices: the ended pins still asserted (and not delivered again meanwhile) deliver. */
    private synchronized void redeliver(int ended) {
        for (int pin = 0; pin < PINS; pin++) {
            if ((ended & (1 << pin)) == 0) {
                continue;
            }
            long e = table[pin];
            if ((e & MASKED) == 0 && (irr & (1 << pin)) != 0 && (e & REMOTE_IRR) == 0) {
                if (++successiveEois[pin] >= STORM_LIMIT) {
                    successiveEois[pin] = 0;
                    serviceLater();
                } else {
                    service();
                }
            } else {
                successiveEois[pin] = 0;
            }
        }
    }

    /** ID, IOREGSEL, the redirection table (with Remote IRR), pending requests, input levels, EOI runs. */
    @Override
    public synchronized void saveState(StateWriter out) {
        out.putByte(id).putByte(regsel).putLongs(table).putInt(irr).putInt(inputs).putInts(successiveEois);
    }

    /**
     * Checks everything first (a bad state changes nothing), then tells the sink every pin's route, as
     * the guest's programming did on the saved machine (KVM's GSI routes with a split irqchip), and
     * sends what may go: a request the saved one held back for a storm delay goes now.
     */
    @Override
    public synchronized void restoreState(StateReader in) {
        int newId = in.getByte();
        int newRegsel = in.getByte();
        long[] newTable = in.getLongs();
        int newIrr = in.getInt();
        int newInputs = in.getInt();
        int[] eois = in.getInts();
        if (newId > 0xf) {
            throw in.bad("IOAPIC ID is " + newId);
        }
        if (newTable.length != PINS || eois.length != PINS) {
            throw in.bad(newTable.length + " redirection entries and " + eois.length + " EOI counts, not " + PINS);
        }
        int pinMask = (1 << PINS) - 1;
        if ((newIrr & ~pinMask) != 0 || (newInputs & ~pinMask) != 0) {
            throw in.bad(String.format("IRR 0x%x or inputs 0x%x name pins past %d", newIrr, newInputs, PINS - 1));
        }
        for (int pin = 0; pin < PINS; pin++) {
            long e = newTable[pin];
            if ((e & DELIVERY_STATUS) != 0 || ((e & TRIGGER_LEVEL) == 0 && (e & REMOTE_IRR) != 0)) {
                throw in.bad(String.format("redirection entry %d is 0x%x", pin, e));
            }
            if (eois[pin] < 0 || eois[pin] >= STORM_LIMIT) {
                throw in.bad("pin " + pin + " has " + eois[pin] + " successive EOIs");
            }
        }
        id = newId;
        regsel = newRegsel;
        System.arraycopy(newTable, 0, table, 0, PINS);
        System.arraycopy(eois, 0, successiveEois, 0, PINS);
        irr = newIrr;
        inputs = newInputs;
        for (int pin = 0; pin < PINS; pin++) {
            long e = table[pin];
            sink.routeChanged(pin, msiAddress(e), msiData(e), (e & MASKED) != 0);
        }
        service();
    }

    /** Stops the storm timer. */
    @Override
    public void close() {
        DeviceTimer t;
        synchronized (this) {
            closed = true;
            t = timer;
            timer = null;
        }
        if (t != null) {
            t.stop();
        }
    }

    private synchronized void setPin(int pin, boolean level) {
        int bit = 1 << pin;
        boolean was = (inputs & bit) != 0;
        inputs = level ? inputs | bit : inputs & ~bit;
        long e = table[pin];
        if ((e & TRIGGER_LEVEL) != 0) {
            if (level) {
                irr |= bit;
                if ((e & REMOTE_IRR) == 0) {
                    service();
                }
            } else {
                irr &= ~bit;
            }
        } else if (level && !was) {
            irr |= bit; // pending until the pin is unmasked
            service();
        }
    }

    /** Sends every pending, unmasked request that Remote IRR does not hold back. */
    private void service() {
        for (int pin = 0; pin < PINS; pin++) {
            int bit = 1 << pin;
            long e = table[pin];
            if ((irr & bit) == 0 || (e & MASKED) != 0) {
                continue;
            }
            if ((e & TRIGGER_LEVEL) == 0) {
                irr &= ~bit;
            } else {
                if ((e & REMOTE_IRR) != 0) {
                    continue; // the guest is still handling the previous one
                }
                table[pin] = e | REMOTE_IRR;
            }
            sink.deliver(msiAddress(e), msiData(e));
        }
    }

    private void serviceLater() {
        if (closed || (delayedService != null && !delayedService.isDone())) {
            return;
        }
        if (timer == null) {
            timer = timers.get();
        }
        delayedService = timer.schedule(() -> {
            synchronized (this) {
                if (!closed) {
                    service();
                }
            }
        }, STORM_DELAY_NANOS);
    }

    static long msiAddress(long entry) {
        long dest = (entry >>> 56) & 0xff;
        long extDest = (entry >>> 49) & 0x7f;
        long destMode = (entry >>> DEST_MODE_SHIFT) & 1;
        return MSI_BASE | dest << 12 | extDest << 5 | destMode << 2;
    }

    static int msiData(long entry) {
        int vector = (int) (entry & VECTOR);
        int deliveryMode = (int) (entry >>> DELIVERY_MODE_SHIFT) & 7;
        int trigger = (entry & TRIGGER_LEVEL) != 0 ? 1 : 0;
        return vector | deliveryMode << 8 | trigger << 15;
    }

    private int readIndirect(int reg) {
        switch (reg) {
            case REG_ID, REG_ARBITRATION -> {
                return id << 24;
            }
            case REG_VERSION -> {
                return VERSION | (PINS - 1) << 16;
            }
            default -> {
                int pin = (reg - REG_TABLE) >> 1;
                if (reg < REG_TABLE || pin >= PINS) {
                    return 0; // reserved registers read as zero
                }
                long e = table[pin];
                return (reg & 1) == 0 ? (int) e : (int) (e >>> 32);
            }
        }
    }

    private void writeIndirect(int reg, int v) {
        if (reg == REG_ID) {
            id = (v >>> 24) & 0xf;
            return;
        }
        int pin = (reg - REG_TABLE) >> 1;
        if (reg < REG_TABLE || pin >= PINS) {
            return; // version, arbitration and reserved registers are read-only
        }
        long old = table[pin];
        long e = (reg & 1) == 0
                ? (old & 0xffffffff00000000L) | (v & 0xffffffffL)
                : (old & 0xffffffffL) | ((long) v << 32);
        e = (e & ~READ_ONLY) | (old & READ_ONLY);
        if ((e & TRIGGER_LEVEL) == 0) {
            e &= ~REMOTE_IRR; // an edge-triggered pin has no Remote IRR
        }
        table[pin] = e;
        successiveEois[pin] = 0;
        if ((e & TRIGGER_LEVEL) == 0) {
            if ((old & TRIGGER_LEVEL) != 0) {
                irr &= ~(1 << pin); // an asserted level is no edge: edge pins only request on a new edge
            }
        } else if ((inputs & (1 << pin)) != 0) {
            irr |= 1 << pin; // a level-triggered pin that is asserted requests at once
        } else {
            irr &= ~(1 << pin); // and one that is not, does not (a pending edge is no level)
        }
        if (msiAddress(e) != msiAddress(old) || msiData(e) != msiData(old) || ((e ^ old) & MASKED) != 0) {
            // may hand back edges that were in flight elsewhere (setPin on this thread): they stay pending here
            sink.routeChanged(pin, msiAddress(e), msiData(e), (e & MASKED) != 0);
        }
        service();
    }

    @Override
    public String toString() {
        return String.format("%s (IOAPIC at 0x%x)", name, BASE);
    }
}
