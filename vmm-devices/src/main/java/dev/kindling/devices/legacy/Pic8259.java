package dev.kindling.devices.legacy;

import dev.kindling.bus.BusRange;
import dev.kindling.device.Device;
import dev.kindling.irq.IrqLine;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;
import java.util.List;
import java.util.Objects;

/**
 * The PC's pair of 8259A interrupt controllers, the slave cascaded into the master's IRQ 2, plus the
 * edge/level control registers (ELCR) of PC chipsets. Port-I/O windows, each of two byte-wide ports:
 * {@link #master()} at 0x20, {@link #slave()} at 0xa0, {@link #elcr()} at 0x4d0 (offset 0 master,
 * offset 1 slave); {@link #busRanges()} lists them.
 *
 * <p>Programming: ICW1-ICW4 (ICW1 bit 3 selects level triggering for every pin; single mode and a
 * missing ICW4 are honoured), OCW1 (mask), OCW2 (non-specific and specific EOI, rotation, set
 * priority), OCW3 (read IRR or ISR, poll, special mask). Pins are edge-triggered unless ICW1 bit 3
 * or their ELCR bit makes them level-triggered (ELCR cannot make IRQ 0, 1, 2, 8 or 13 level).
 * An edge-triggered pin latches a request on each rising edge; a level-triggered one requests while
 * its input is high, so it fires again after EOI if the device still holds it.
 *
 * <p>Inputs: {@link #raise(int, boolean)} per ISA IRQ 0-15, or {@link #line(int)} as an
 * {@link IrqLine}. IRQ 2 is the cascade input and ignores outside signals (on a PC the ISA IRQ 2 pin
 * is wired to IRQ 9). Output: the master's INTR pin goes to {@link PicOutput}, called on each change
 * while the controller's lock is held (the consumer may call {@link #acknowledge()} from the same
 * thread). The CPU's interrupt-acknowledge cycle is {@link #acknowledge()}.
 *
 * <p>Only one-byte accesses are decoded; others read as all ones and writes are ignored.
 */
public final class Pic8259 implements BusMapped, AutoCloseable, Stateful {
    public static final long MASTER_BASE = 0x20;
    public static final long SLAVE_BASE = 0xa0;
    public static final long ELCR_BASE = 0x4d0;
    /** The master's pin the slave's INT drives. */
    public static final int CASCADE_IRQ = 2;

    private final PicOutput output;
    private final Chip master = new Chip(true, 0xf8);
    private final Chip slave = new Chip(false, 0xde);
    private final Device masterPorts = new ChipPorts("pic-master", master);
    private final Device slavePorts = new ChipPorts("pic-slave", slave);
    private final Device elcrPorts = new ElcrPorts();
    private final IrqLine[] lines = new IrqLine[16];
    private boolean intr;

    public Pic8259(PicOutput output) {
        this.output = Objects.requireNonNull(output, "output");
        for (int i = 0; i < lines.length; i++) {
            int irq = i;
            lines[i] = IrqLines.pin(irq, level -> raise(irq, level));
        }
    }

    /** Ports 0x20-0x21. */
    public Device master() {
        return masterPorts;
    }

    /** Ports 0xa0-0xa1. */
    public Device slave() {
        return slavePorts;
    }

    /** Ports 0x4d0-0x4d1. */
    public Device elcr() {
        return elcrPorts;
    }

    @Override
    public List<BusRange> busRanges() {
        return List.of(new BusRange(MASTER_BASE, 2, masterPorts), new BusRange(SLAVE_BASE, 2, slavePorts),
                new BusRange(ELCR_BASE, 2, elcrPorts));
    }

    /** The input of ISA IRQ {@code irq} (0-15) as a line whose {@code gsi()} is {@code irq}. */
    public IrqLine line(int irq) {
        Objects.checkIndex(irq, lines.length);
        return lines[irq];
    }

    /** Sets the level of input pin {@code irq} (0-7 master, 8-15 slave). Out-of-range pins are ignored. */
    public synchronized void raise(int irq, boolean level) {
        if (irq < 0 || irq > 15 || irq == CASCADE_IRQ) {
            return;
        }
        if (irq < 8) {
            master.setInput(irq, level);
        } else {
            slave.setInput(irq - 8, level);
        }
        update();
    }

    /**
     * The interrupt-acknowledge cycle: returns the vector of the highest-priority request and marks it
     * in service (unless auto-EOI). With no request pending (a spurious interrupt) it returns the
     * vector of IRQ 7 of the controller concerned and changes nothing.
     */
    public synchronized int acknowledge() {
        int vector;
        int irq = master.highestRequest();
        if (irq < 0) {
            vector = master.vectorBase + 7;
        } else {
            if (irq == CASCADE_IRQ) {
                int irq2 = slave.highestRequest();
                if (irq2 >= 0) {
                    slave.acknowledge(irq2);
                    vector = slave.vectorBase + irq2;
                } else {
                    vector = slave.vectorBase + 7;
                }
                update();
            } else {
                vector = master.vectorBase + irq;
            }
            master.acknowledge(irq);
        }
        update();
        return vector & 0xff;
    }

    /** Whether INTR is asserted now. */
    public synchronized boolean interruptRequested() {
        return intr;
    }

    /** Nothing to release: the controllers have no threads. */
    @Override
    public void close() {}

    /** Both chips' registers, latches and input levels; INTR follows from them. */
    @Override
    public synchronized void saveState(StateWriter out) {
        master.save(out);
        slave.save(out);
    }

    /**
     * Everything is read and checked before anything changes, so a bad state leaves the controllers
     * as they were; then INTR is driven to the level the state implies (the new machine's starts low).
     */
    @Override
    public synchronized void restoreState(StateReader in) {
        Chip m = new Chip(true, master.elcrMask);
        Chip s = new Chip(false, slave.elcrMask);
        m.load(in);
        s.load(in);
        master.copyFrom(m);
        slave.copyFrom(s);
        update();
    }

    /** Propagates the slave's INT to the master's cascade pin and the master's INT to {@link PicOutput}. */
    private void update() {
        master.setInput(CASCADE_IRQ, slave.highestRequest() >= 0);
        boolean level = master.highestRequest() >= 0;
        if (level != intr) {
            intr = level;
            output.setInterruptRequest(level);
        }
    }

    /** One 8259A. Guarded by the enclosing Pic8259. */
    private static final class Chip {
        final boolean isMaster;
        final int elcrMask;
        int irr;
        int imr;
        int isr;
        int lastInput;
        int priorityAdd;
        int vectorBase;
        boolean readIsr;
        boolean poll;
        boolean specialMask;
        int initState;
        boolean autoEoi;
        boolean rotateOnAutoEoi;
        boolean specialFullyNested;
        boolean needIcw4;
        boolean single;
        boolean levelTriggeredAll;
        int elcr;

        Chip(boolean isMaster, int elcrMask) {
            this.isMaster = isMaster;
            this.elcrMask = elcrMask;
        }

        void save(StateWriter out) {
            out.putByte(irr).putByte(imr).putByte(isr).putByte(lastInput).putByte(priorityAdd)
                    .putByte(vectorBase).putByte(initState).putByte(elcr);
            out.putBoolean(readIsr).putBoolean(poll).putBoolean(specialMask).putBoolean(autoEoi)
                    .putBoolean(rotateOnAutoEoi).putBoolean(specialFullyNested).putBoolean(needIcw4)
                    .putBoolean(single).putBoolean(levelTriggeredAll);
        }

        void load(StateReader in) {
            irr = in.getByte();
            imr = in.getByte();
            isr = in.getByte();
            lastInput = in.getByte();
            priorityAdd = in.getByte();
            vectorBase = in.getByte();
            initState = in.getByte();
            elcr = in.getByte();
            readIsr = in.getBoolean();
            poll = in.getBoolean();
            specialMask = in.getBoolean();
            autoEoi = in.getBoolean();
            rotateOnAutoEoi = in.getBoolean();
            specialFullyNested = in.getBoolean();
            needIcw4 = in.getBoolean();
            single = in.getBoolean();
            levelTriggeredAll = in.getBoolean();
            String chip = isMaster ? "master" : "slave";
            if (priorityAdd > 7) {
                throw in.bad(chip + " priority rotation is " + priorityAdd);
            }
            if ((vectorBase & 7) != 0) {
                throw in.bad(chip + " vector base is " + vectorBase);
            }
            if (initState > 3) {
                throw in.bad(chip + " initialization step is " + initState);
            }
            if ((elcr & ~elcrMask) != 0) {
                throw in.bad(chip + " ELCR is " + elcr);
            }
        }

        void copyFrom(Chip c) {
            irr = c.irr;
            imr = c.imr;
            isr = c.isr;
            lastInput = c.lastInput;
            priorityAdd = c.priorityAdd;
            vectorBase = c.vectorBase;
            initState = c.initState;
            elcr = c.elcr;
            readIsr = c.readIsr;
            poll = c.poll;
            specialMask = c.specialMask;
            autoEoi = c.autoEoi;
            rotateOnAutoEoi = c.rotateOnAutoEoi;
            specialFullyNested = c.specialFullyNested;
            needIcw4 = c.needIcw4;
            single = c.single;
            levelTriggeredAll = c.levelTriggeredAll;
        }

        boolean levelTriggered(int bit) {
            return levelTriggeredAll || (elcr & bit) != 0;
        }

        void setInput(int pin, boolean level) {
            int bit = 1 << pin;
            if (levelTriggered(bit)) {
                if (level) {
                    irr |= bit;
                    lastInput |= bit;
                } else {
                    irr &= ~bit;
                    lastInput &= ~bit;
                }
            } else if (level) {
                if ((lastInput & bit) == 0) {
                    irr |= bit; // rising edge
                }
                lastInput |= bit;
            } else {
                lastInput &= ~bit;
            }
        }

        /** Priority 0 (highest) to 7 of the best bit in {@code mask}, 8 if none, given the rotation. */
        int priority(int mask) {
            if (mask == 0) {
                return 8;
            }
            int p = 0;
            while ((mask & (1 << ((p + priorityAdd) & 7))) == 0) {
                p++;
            }
            return p;
        }

        /** The pin to interrupt the CPU with, or -1: a request above everything in service. */
        int highestRequest() {
            int p = priority(irr & ~imr);
            if (p == 8) {
                return -1;
            }
            int inService = isr;
            if (specialMask) {
                inService &= ~imr;
            }
            if (specialFullyNested && isMaster) {
                inService &= ~(1 << CASCADE_IRQ);
            }
            return p < priority(inService) ? (p + priorityAdd) & 7 : -1;
        }

        void acknowledge(int pin) {
            int bit = 1 << pin;
            if (autoEoi) {
                if (rotateOnAutoEoi) {
                    priorityAdd = (pin + 1) & 7;
                }
            } else {
                isr |= bit;
            }
            if (!levelTriggered(bit)) {
                irr &= ~bit; // a level-triggered request stays until the device drops it
            }
        }

        void initialize(int icw1) {
            irr &= elcr; // level-triggered requests survive
            lastInput = 0;
            imr = 0;
            isr = 0;
            priorityAdd = 0;
            vectorBase = 0;
            readIsr = false;
            poll = false;
            specialMask = false;
            autoEoi = false;
            rotateOnAutoEoi = false;
            specialFullyNested = false;
            initState = 1;
            needIcw4 = (icw1 & 0x01) != 0;
            single = (icw1 & 0x02) != 0;
            levelTriggeredAll = (icw1 & 0x08) != 0;
        }

        void writeCommand(int v) {
            if ((v & 0x10) != 0) {
                initialize(v);
            } else if ((v & 0x08) != 0) { // OCW3
                if ((v & 0x04) != 0) {
                    poll = true;
                }
                if ((v & 0x02) != 0) {
                    readIsr = (v & 0x01) != 0;
                }
                if ((v & 0x40) != 0) {
                    specialMask = (v & 0x20) != 0;
                }
            } else { // OCW2
                int cmd = v >> 5;
                switch (cmd) {
                    case 0, 4 -> rotateOnAutoEoi = cmd == 4;
                    case 1, 5 -> { // non-specific EOI (5: and rotate)
                        int p = priority(isr);
                        if (p != 8) {
                            int pin = (p + priorityAdd) & 7;
                            isr &= ~(1 << pin);
                            if (cmd == 5) {
                                priorityAdd = (pin + 1) & 7;
                            }
                        }
                    }
                    case 3 -> isr &= ~(1 << (v & 7)); // specific EOI
                    case 6 -> priorityAdd = (v + 1) & 7; // set priority
                    case 7 -> { // specific EOI and rotate
                        isr &= ~(1 << (v & 7));
                        priorityAdd = ((v & 7) + 1) & 7;
                    }
                    default -> {} // 2: no operation
                }
            }
        }

        void writeData(int v) {
            switch (initState) {
                case 0 -> imr = v; // OCW1
                case 1 -> { // ICW2
                    vectorBase = v & 0xf8;
                    initState = single ? (needIcw4 ? 3 : 0) : 2;
                }
                case 2 -> initState = needIcw4 ? 3 : 0; // ICW3: the cascade wiring is fixed
                default -> { // ICW4
                    specialFullyNested = (v & 0x10) != 0;
                    autoEoi = (v & 0x02) != 0;
                    initState = 0;
                }
            }
        }
    }

    /** The two ports of one chip. */
    private final class ChipPorts implements Device {
        private final String name;
        private final Chip chip;

        ChipPorts(String name, Chip chip) {
            this.name = name;
            this.chip = chip;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public long read(long offset, int size) {
            if (!LegacyIo.byteAccess(offset, size, 2)) {
                return LegacyIo.unclaimed(size);
            }
            synchronized (Pic8259.this) {
                if (chip.poll) {
                    chip.poll = false;
                    int pin = chip.highestRequest();
                    if (pin < 0) {
                        return 0;
                    }
                    chip.acknowledge(pin);
                    update();
                    return 0x80 | pin;
                }
                if (offset == 0) {
                    return chip.readIsr ? chip.isr : chip.irr;
                }
                return chip.imr;
            }
        }

        @Override
        public void write(long offset, int size, long value) {
            if (!LegacyIo.byteAccess(offset, size, 2)) {
                return;
            }
            synchronized (Pic8259.this) {
                int v = (int) value & 0xff;
                if (offset == 0) {
                    chip.writeCommand(v);
                } else {
                    chip.writeData(v);
                }
                update();
            }
        }
    }

    /** ELCR1 (master) at offset 0 and ELCR2 (slave) at offset 1. */
    private final class ElcrPorts implements Device {
        @Override
        public String name() {
            return "elcr";
        }

        @Override
        public long read(long offset, int size) {
            if (!LegacyIo.byteAccess(offset, size, 2)) {
                return LegacyIo.unclaimed(size);
            }
            synchronized (Pic8259.this) {
                return (offset == 0 ? master : slave).elcr;
            }
        }

        @Override
        public void write(long offset, int size, long value) {
            if (!LegacyIo.byteAccess(offset, size, 2)) {
                return;
            }
            synchronized (Pic8259.this) {
                Chip chip = offset == 0 ? master : slave;
                chip.elcr = (int) value & chip.elcrMask;
                update();
            }
        }
    }
}
