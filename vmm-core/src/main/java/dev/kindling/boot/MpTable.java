package dev.kindling.boot;

import dev.kindling.memory.GuestMemory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * An Intel MultiProcessor Specification 1.4 table, which is how a kernel without ACPI ({@code X86_MPPARSE}) learns
 * about the CPUs and the IOAPIC. Written at {@link MicrovmLayout#MPTABLE_START} (0x9fc00, the last KiB of base memory,
 * which Linux scans; Firecracker puts it there too): the 16-byte floating pointer "_MP_", immediately followed by the
 * "PCMP" configuration table:
 *
 * <ul>
 * <li>one processor entry per vCPU: local APIC id = index, APIC version 0x14, enabled, the bootstrap flag on CPU 0,
 *     signature family 6 ({@code 0x600}), features FPU and APIC;</li>
 * <li>bus 0, "ISA   ";</li>
 * <li>one IOAPIC: id = number of CPUs (just above the local APIC ids) unless {@link Options#ioapicId()} says
 *     otherwise, the given version, at {@link MicrovmLayout#IOAPIC_ADDRESS};</li>
 * <li>I/O interrupt entries, type INT, ISA bus 0: IRQ n to IOAPIC pin n for every pin 0..23, as Firecracker writes
 *     them, matching KVM's default GSI routing (GSI n = pin n). That covers the legacy ISA IRQs 0-15 (serial on 4),
 *     the virtio-mmio IRQs 5-12 and the rest up to 23. Flags are "conforms to bus" (ISA: edge, active high) unless a
 *     pin is listed as level-triggered, which gets active-high level. With {@link Options#irq0OnPin2()} IRQ 0 goes to
 *     pin 2 instead, the PC convention (QEMU's ACPI interrupt override), and there is no entry for IRQ 2;</li>
 * <li>local interrupt entries: ExtINT on LINT0 of the bootstrap CPU, NMI on LINT1 of every CPU (APIC id 0xff).</li>
 * </ul>
 *
 * With {@link Options#pciInterrupts()} the table also describes PCI bus 0 and its INTx routing, as SeaBIOS writes it:
 * the PCI bus takes id 0 (Linux matches an entry's source bus id against the PCI bus number), the ISA bus id 1;
 * each PCI entry names slot and pin ({@code slot << 2 | pin - 1}) and is level-triggered, active high (what an
 * emulated IOAPIC sees; QEMU's ACPI tables say the same), and a pin a PCI entry takes gets no ISA entry.
 *
 * Both checksums make their structure sum to zero.
 */
public final class MpTable {
    /** APIC ids are 8 bits, 0xff is broadcast, and the IOAPIC takes the id after the last CPU. */
    public static final int MAX_CPUS = 254;
    public static final int FLOATING_POINTER_SIZE = 16;
    public static final int HEADER_SIZE = 44;
    public static final int PROCESSOR_ENTRY_SIZE = 20;
    public static final int ENTRY_SIZE = 8;

    public static final int TYPE_PROCESSOR = 0;
    public static final int TYPE_BUS = 1;
    public static final int TYPE_IOAPIC = 2;
    public static final int TYPE_IO_INTERRUPT = 3;
    public static final int TYPE_LOCAL_INTERRUPT = 4;

    public static final int INT_TYPE_INT = 0;
    public static final int INT_TYPE_NMI = 1;
    public static final int INT_TYPE_EXTINT = 3;
    /** Interrupt flags: polarity and trigger conform to the bus. */
    public static final int FLAGS_CONFORMING = 0;
    /** Interrupt flags: active high (PO = 01), level-triggered (EL = 11). */
    public static final int FLAGS_LEVEL_HIGH = 0x1 | 0x3 << 2;
    /** The PCI bus's id when there is one (its bus number); the ISA bus then takes {@link #ISA_BUS_ID_WITH_PCI}. */
    public static final int PCI_BUS_ID = 0;
    public static final int ISA_BUS_ID_WITH_PCI = 1;

    public static final int LAPIC_VERSION = 0x14;
    /** KVM's in-kernel IOAPIC reports 0x11; QEMU's userspace one 0x20. */
    public static final int IOAPIC_VERSION_KVM = 0x11;
    public static final int IOAPIC_VERSION_QEMU = 0x20;
    public static final int CPU_SIGNATURE = 0x600;
    public static final int CPU_FEATURES = 0x201; // APIC (bit 9) | FPU (bit 0)
    public static final String OEM_ID = "KINDLING";
    public static final String PRODUCT_ID = "MICROVM     ";

    /**
     * A PCI legacy interrupt: INTx {@code pin} (1 = INTA# .. 4 = INTD#) of the device in {@code slot} of bus 0
     * raises IOAPIC pin {@code ioapicPin}.
     */
    public record PciInterrupt(int slot, int pin, int ioapicPin) {
        public PciInterrupt {
            if (slot < 0 || slot > 31) {
                throw new IllegalArgumentException("PCI slot " + slot + " is not in 0-31");
            }
            if (pin < 1 || pin > 4) {
                throw new IllegalArgumentException("PCI interrupt pin " + pin + " is not in 1-4 (INTA#-INTD#)");
            }
            if (ioapicPin < 0 || ioapicPin >= MicrovmLayout.IOAPIC_PINS) {
                throw new IllegalArgumentException("IOAPIC pin " + ioapicPin);
            }
        }
    }

    /**
     * @param ioapicVersion     version the IOAPIC entry reports
     * @param irq0OnPin2        route ISA IRQ 0 to pin 2 (and list no IRQ 2) instead of pin 0
     * @param levelTriggeredPins IOAPIC pins to describe as active-high level-triggered instead of conforming
     * @param pciInterrupts     PCI INTx routes; empty: no PCI bus in the table
     * @param ioapicId          the IOAPIC's id, or {@link #IOAPIC_ID_AFTER_CPUS}
     */
    public record Options(int ioapicVersion, boolean irq0OnPin2, Set<Integer> levelTriggeredPins,
                          List<PciInterrupt> pciInterrupts, int ioapicId) {
        public static final Options DEFAULT = new Options(IOAPIC_VERSION_KVM, false, Set.of());
        /** The IOAPIC takes the id after the last CPU's. */
        public static final int IOAPIC_ID_AFTER_CPUS = -1;

        public Options {
            if (ioapicId < IOAPIC_ID_AFTER_CPUS || ioapicId >= 0xff) {
                throw new IllegalArgumentException("IOAPIC id " + ioapicId + " is not in 0-254");
            }
            levelTriggeredPins = Set.copyOf(levelTriggeredPins);
            pciInterrupts = List.copyOf(pciInterrupts);
            if (ioapicVersion < 0 || ioapicVersion > 0xff) {
                throw new IllegalArgumentException("IOAPIC version " + ioapicVersion);
            }
            for (int p : levelTriggeredPins) {
                if (p < 0 || p >= MicrovmLayout.IOAPIC_PINS) {
                    throw new IllegalArgumentException("IOAPIC pin " + p);
                }
            }
            Set<List<Integer>> sources = new HashSet<>();
            for (PciInterrupt i : pciInterrupts) {
                if (!sources.add(List.of(i.slot(), i.pin()))) {
                    throw new IllegalArgumentException("PCI slot " + i.slot() + " pin " + i.pin() + " is routed twice");
                }
                if (irq0OnPin2 && (i.ioapicPin() == 0 || i.ioapicPin() == 2)) {
                    throw new IllegalArgumentException("IOAPIC pin " + i.ioapicPin() + " carries ISA IRQ 0");
                }
            }
        }

        public Options(int ioapicVersion, boolean irq0OnPin2, Set<Integer> levelTriggeredPins,
                       List<PciInterrupt> pciInterrupts) {
            this(ioapicVersion, irq0OnPin2, levelTriggeredPins, pciInterrupts, IOAPIC_ID_AFTER_CPUS);
        }

        public Options(int ioapicVersion, boolean irq0OnPin2, Set<Integer> levelTriggeredPins) {
            this(ioapicVersion, irq0OnPin2, levelTriggeredPins, List.of());
        }

        /** These options with the IOAPIC's id {@code id}. */
        public Options withIoapicId(int id) {
            return new Options(ioapicVersion, irq0OnPin2, levelTriggeredPins, pciInterrupts, id);
        }

        boolean pci() {
            return !pciInterrupts.isEmpty();
        }

        /** The IOAPIC pins the PCI entries take (listed with no ISA entry). */
        Set<Integer> pciPins() {
            Set<Integer> pins = new HashSet<>();
            pciInterrupts.forEach(i -> pins.add(i.ioapicPin()));
            return pins;
        }
    }

    private MpTable() {
    }

    /** Number of I/O interrupt entries for {@code options}. */
    public static int ioInterruptEntries(Options options) {
        int isa = (options.irq0OnPin2() ? MicrovmLayout.IOAPIC_PINS - 1 : MicrovmLayout.IOAPIC_PINS)
                - options.pciPins().size();
        return isa + options.pciInterrupts().size();
    }

    private static int buses(Options options) {
        return options.pci() ? 2 : 1;
    }

    /** Bytes of the configuration table (header and entries) for {@code cpus}. */
    public static int tableSize(int cpus, Options options) {
        return HEADER_SIZE + PROCESSOR_ENTRY_SIZE * cpus
                + ENTRY_SIZE * (buses(options) + 1 + ioInterruptEntries(options) + 2);
    }

    /** Total bytes written from {@link MicrovmLayout#MPTABLE_START}. */
    public static int size(int cpus, Options options) {
        return FLOATING_POINTER_SIZE + tableSize(cpus, options);
    }

    /** Checks that {@link #write} would succeed. */
    public static AddressRange check(GuestMemory memory, int cpus, Options options) {
        if (cpus < 1 || cpus > MAX_CPUS) {
            throw new BootException(cpus + " CPUs; the MP table describes 1 to " + MAX_CPUS);
        }
        AddressRange r = new AddressRange(MicrovmLayout.MPTABLE_START, size(cpus, options));
        if (!memory.isValid(r.start(), r.size())) {
            throw new BootException("MP table " + r + " for " + cpus + " CPUs is outside guest RAM");
        }
        if (r.end() > MicrovmLayout.HIMEM_START) {
            throw new BootException("MP table " + r + " for " + cpus + " CPUs runs into high memory");
        }
        return r;
    }

    /** Writes the table for {@code cpus} vCPUs with {@link Options#DEFAULT}; returns the range it occupies. */
    public static AddressRange write(GuestMemory memory, int cpus) {
        return write(memory, cpus, Options.DEFAULT);
    }

    /** Writes the table for {@code cpus} vCPUs; returns the range it occupies. */
    public static AddressRange write(GuestMemory memory, int cpus, Options options) {
        AddressRange r = check(memory, cpus, options);
        memory.write(r.start(), build(cpus, options));
        return r;
    }

    /** The table's bytes, floating pointer first, for placement at {@link MicrovmLayout#MPTABLE_START}. */
    public static byte[] build(int cpus, Options options) {
        if (cpus < 1 || cpus > MAX_CPUS) {
            throw new BootException(cpus + " CPUs; the MP table describes 1 to " + MAX_CPUS);
        }
        int ioapicId = options.ioapicId() == Options.IOAPIC_ID_AFTER_CPUS ? cpus : options.ioapicId();
        long base = MicrovmLayout.MPTABLE_START;
        ByteBuffer b = ByteBuffer.allocate(size(cpus, options)).order(ByteOrder.LITTLE_ENDIAN);

        // Floating pointer structure.
        b.put(ascii("_MP_", 4));
        b.putInt((int) (base + FLOATING_POINTER_SIZE)); // physical address of the configuration table
        b.put((byte) 1); // length in 16-byte units
        b.put((byte) 4); // specification revision 1.4
        b.put((byte) 0); // checksum, below
        b.put((byte) 0); // feature byte 1: 0 = a configuration table is present
        b.put((byte) 0); // feature byte 2: IMCR absent (virtual wire mode)
        b.put(new byte[3]);

        // Configuration table header.
        int table = b.position();
        int entries = cpus + buses(options) + 1 + ioInterruptEntries(options) + 2;
        b.put(ascii("PCMP", 4));
        b.putShort((short) tableSize(cpus, options));
        b.put((byte) 4); // specification revision 1.4
        b.put((byte) 0); // checksum, below
        b.put(ascii(OEM_ID, 8));
        b.put(ascii(PRODUCT_ID, 12));
        b.putInt(0); // OEM table pointer
        b.putShort((short) 0); // OEM table size
        b.putShort((short) entries);
        b.putInt((int) MicrovmLayout.LAPIC_ADDRESS);
        b.putShort((short) 0); // extended table length
        b.put((byte) 0); // extended table checksum
        b.put((byte) 0); // reserved

        for (int cpu = 0; cpu < cpus; cpu++) {
            b.put((byte) TYPE_PROCESSOR);
            b.put((byte) cpu); // local APIC id
            b.put((byte) LAPIC_VERSION);
            b.put((byte) (0x1 | (cpu == 0 ? 0x2 : 0))); // EN, BP
            b.putInt(CPU_SIGNATURE);
            b.putInt(CPU_FEATURES);
            b.put(new byte[8]);
        }

        int isaBus = options.pci() ? ISA_BUS_ID_WITH_PCI : 0;
        if (options.pci()) {
            b.put((byte) TYPE_BUS);
            b.put((byte) PCI_BUS_ID);
            b.put(ascii("PCI   ", 6));
        }
        b.put((byte) TYPE_BUS);
        b.put((byte) isaBus);
        b.put(ascii("ISA   ", 6));

        b.put((byte) TYPE_IOAPIC);
        b.put((byte) ioapicId);
        b.put((byte) options.ioapicVersion());
        b.put((byte) 0x1); // EN
        b.putInt((int) MicrovmLayout.IOAPIC_ADDRESS);

        if (options.irq0OnPin2()) {
            ioInterrupt(b, isaBus, 0, 2, ioapicId, flags(2, options));
        }
        Set<Integer> pciPins = options.pciPins();
        for (int irq = 0; irq < MicrovmLayout.IOAPIC_PINS; irq++) {
            if (options.irq0OnPin2() && (irq == 0 || irq == 2) || pciPins.contains(irq)) {
                continue;
            }
            ioInterrupt(b, isaBus, irq, irq, ioapicId, flags(irq, options));
        }
        for (PciInterrupt i : options.pciInterrupts()) {
            ioInterrupt(b, PCI_BUS_ID, i.slot() << 2 | (i.pin() - 1), i.ioapicPin(), ioapicId, FLAGS_LEVEL_HIGH);
        }

        localInterrupt(b, INT_TYPE_EXTINT, 0, 0);
        localInterrupt(b, INT_TYPE_NMI, 0xff, 1);

        if (b.position() != b.capacity()) {
            throw new IllegalStateException("MP table size " + b.position() + " != " + b.capacity());
        }
        byte[] out = b.array();
        out[10] = checksum(out, 0, FLOATING_POINTER_SIZE);
        out[table + 7] = checksum(out, table, out.length - table);
        return out;
    }

    private static int flags(int pin, Options options) {
        return options.levelTriggeredPins().contains(pin) ? FLAGS_LEVEL_HIGH : FLAGS_CONFORMING;
    }

    private static void ioInterrupt(ByteBuffer b, int bus, int irq, int pin, int ioapicId, int flags) {
        b.put((byte) TYPE_IO_INTERRUPT);
        b.put((byte) INT_TYPE_INT);
        b.putShort((short) flags);
        b.put((byte) bus);
        b.put((byte) irq);
        b.put((byte) ioapicId);
        b.put((byte) pin);
    }

    private static void localInterrupt(ByteBuffer b, int type, int apicId, int lint) {
        b.put((byte) TYPE_LOCAL_INTERRUPT);
        b.put((byte) type);
        b.putShort((short) FLAGS_CONFORMING);
        b.put((byte) 0); // source bus
        b.put((byte) 0); // source bus IRQ
        b.put((byte) apicId);
        b.put((byte) lint);
    }

    /** The byte that makes {@code [offset, offset + length)} sum to zero (the checksum byte itself counted as 0). */
    static byte checksum(byte[] b, int offset, int length) {
        int sum = 0;
        for (int i = offset; i < offset + length; i++) {
            sum += b[i];
        }
        return (byte) -sum;
    }

    private static byte[] ascii(String s, int length) {
        byte[] b = s.getBytes(StandardCharsets.US_ASCII);
        if (b.length != length) {
            throw new IllegalArgumentException("'" + s + "' is not " + length + " characters");
        }
        return b;
    }
}
