package dev.kindling.boot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class MpTableTest {
    private GuestMemory mem;

    @BeforeEach
    void memory() {
        mem = MicrovmLayout.anonymousMemory(16L << 20);
    }

    @AfterEach
    void close() {
        mem.close();
    }

    record Cpu(int apicId, int version, int flags, int signature, int features) {
    }

    record IoInt(int type, int flags, int bus, int irq, int ioapic, int pin) {
    }

    record LocalInt(int type, int flags, int apic, int lint) {
    }

    record Ioapic(int id, int version, int flags, long address) {
    }

    /** The table as a guest parses it, entry by entry from the header's length. */
    record Parsed(long tableAt, int length, int entryCount, long lapic, String oem, String product, List<Cpu> cpus,
                  List<String> buses, List<Ioapic> ioapics, List<IoInt> ioInts, List<LocalInt> localInts, int entriesSeen) {
    }

    private int u8(long a) {
        return mem.read8(a) & 0xff;
    }

    private int u16(long a) {
        return mem.read16(a) & 0xffff;
    }

    private long u32(long a) {
        return mem.read32(a) & 0xffffffffL;
    }

    private int sum(long a, int length) {
        int s = 0;
        for (byte b : mem.read(a, length)) {
            s += b & 0xff;
        }
        return s & 0xff;
    }

    private String ascii(long a, int length) {
        return new String(mem.read(a, length), StandardCharsets.US_ASCII);
    }

    private Parsed parse() {
        long fp = MicrovmLayout.MPTABLE_START;
        assertThat(ascii(fp, 4)).isEqualTo("_MP_");
        assertThat(u8(fp + 8)).as("length in paragraphs").isEqualTo(1);
        assertThat(u8(fp + 9)).as("spec revision").isEqualTo(4);
        assertThat(sum(fp, 16)).as("floating pointer checksum").isZero();
        assertThat(u8(fp + 11)).as("feature 1: table present").isZero();
        long t = u32(fp + 4);
        assertThat(ascii(t, 4)).isEqualTo("PCMP");
        int length = u16(t + 4);
        assertThat(u8(t + 6)).isEqualTo(4);
        assertThat(sum(t, length)).as("configuration table checksum").isZero();
        int count = u16(t + 34);
        List<Cpu> cpus = new ArrayList<>();
        List<String> buses = new ArrayList<>();
        List<Ioapic> ioapics = new ArrayList<>();
        List<IoInt> ioInts = new ArrayList<>();
        List<LocalInt> localInts = new ArrayList<>();
        long p = t + 44;
        int seen = 0;
        while (p < t + length) {
            int type = u8(p);
            seen++;
            switch (type) {
                case 0 -> {
                    cpus.add(new Cpu(u8(p + 1), u8(p + 2), u8(p + 3), (int) u32(p + 4), (int) u32(p + 8)));
                    p += 20;
                }
                case 1 -> {
                    buses.add(u8(p + 1) + ":" + ascii(p + 2, 6));
                    p += 8;
                }
                case 2 -> {
                    ioapics.add(new Ioapic(u8(p + 1), u8(p + 2), u8(p + 3), u32(p + 4)));
                    p += 8;
                }
                case 3 -> {
                    ioInts.add(new IoInt(u8(p + 1), u16(p + 2), u8(p + 4), u8(p + 5), u8(p + 6), u8(p + 7)));
                    p += 8;
                }
                case 4 -> {
                    localInts.add(new LocalInt(u8(p + 1), u16(p + 2), u8(p + 6), u8(p + 7)));
                    p += 8;
                }
                default -> throw new AssertionError("entry type " + type + " at 0x" + Long.toHexString(p));
            }
        }
        assertThat(p).as("entries end exactly at the table's length").isEqualTo(t + length);
        return new Parsed(t, length, count, u32(t + 36), ascii(t + 8, 8), ascii(t + 16, 12), cpus, buses, ioapics,
                ioInts, localInts, seen);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4, 37, 254})
    void tableParsesBack(int n) {
        AddressRange r = MpTable.write(mem, n);
        assertThat(r.start()).isEqualTo(0x9fc00);
        assertThat(r.size()).isEqualTo(MpTable.size(n, MpTable.Options.DEFAULT));

        Parsed t = parse();
        assertThat(t.tableAt()).isEqualTo(0x9fc10);
        assertThat(t.length() + 16).isEqualTo((int) r.size());
        assertThat(t.entryCount()).isEqualTo(t.entriesSeen()).isEqualTo(n + 1 + 1 + 24 + 2);
        assertThat(t.lapic()).isEqualTo(0xfee00000L);
        assertThat(t.oem()).isEqualTo("KINDLING");
        assertThat(t.cpus()).hasSize(n);
        for (int i = 0; i < n; i++) {
            Cpu c = t.cpus().get(i);
            assertThat(c.apicId()).isEqualTo(i);
            assertThat(c.version()).isEqualTo(0x14);
            assertThat(c.flags()).isEqualTo(i == 0 ? 0x3 : 0x1);
            assertThat(c.signature()).isEqualTo(0x600);
            assertThat(c.features()).isEqualTo(0x201);
        }
        assertThat(t.buses()).containsExactly("0:ISA   ");
        assertThat(t.ioapics()).containsExactly(new Ioapic(n, 0x11, 1, 0xfec00000L));
        assertThat(t.ioInts()).hasSize(24);
        for (int i = 0; i < 24; i++) {
            assertThat(t.ioInts().get(i)).isEqualTo(new IoInt(0, 0, 0, i, n, i));
        }
        assertThat(t.localInts()).containsExactly(new LocalInt(3, 0, 0, 0), new LocalInt(1, 0, 0xff, 1));
    }

    @Test
    void smallTableFitsInTheEbda() {
        // up to 37 CPUs everything stays inside the KiB at 0x9fc00
        assertThat(MpTable.size(37, MpTable.Options.DEFAULT)).isLessThanOrEqualTo(1024);
        assertThat(MpTable.size(38, MpTable.Options.DEFAULT)).isGreaterThan(1024);
    }

    @Test
    void irq0OnPin2AndLevelPins() {
        MpTable.write(mem, 2, new MpTable.Options(MpTable.IOAPIC_VERSION_QEMU, true, Set.of(5, 6)));
        Parsed t = parse();
        assertThat(t.ioapics().get(0).version()).isEqualTo(0x20);
        assertThat(t.ioInts()).hasSize(23);
        assertThat(t.entryCount()).isEqualTo(2 + 1 + 1 + 23 + 2);
        assertThat(t.ioInts().get(0)).isEqualTo(new IoInt(0, 0, 0, 0, 2, 2));
        assertThat(t.ioInts()).noneMatch(i -> i.irq() == 2);
        assertThat(t.ioInts()).noneMatch(i -> i.pin() == 0);
        assertThat(t.ioInts()).filteredOn(i -> i.pin() == 5 || i.pin() == 6).allMatch(i -> i.flags() == 0xd);
        assertThat(t.ioInts()).filteredOn(i -> i.pin() != 5 && i.pin() != 6).allMatch(i -> i.flags() == 0);
    }

    @Test
    void pciInterruptsGetAPciBusAndLevelEntriesInsteadOfTheirIsaOnes() {
        List<MpTable.PciInterrupt> pci = List.of(new MpTable.PciInterrupt(1, 1, 17), new MpTable.PciInterrupt(2, 1, 18),
                new MpTable.PciInterrupt(5, 1, 17));
        AddressRange r = MpTable.write(mem, 2, new MpTable.Options(MpTable.IOAPIC_VERSION_KVM, false, Set.of(5), pci));
        Parsed t = parse();
        assertThat(t.length() + 16).isEqualTo((int) r.size());
        assertThat(t.buses()).as("PCI is bus 0, as Linux matches its bus number").containsExactly("0:PCI   ", "1:ISA   ");
        assertThat(t.entryCount()).isEqualTo(t.entriesSeen()).isEqualTo(2 + 2 + 1 + 22 + 3 + 2);
        List<IoInt> isa = t.ioInts().stream().filter(i -> i.bus() == 1).toList();
        assertThat(isa).hasSize(22).noneMatch(i -> i.pin() == 17 || i.pin() == 18);
        assertThat(isa).filteredOn(i -> i.pin() == 5).containsExactly(new IoInt(0, 0xd, 1, 5, 2, 5));
        assertThat(t.ioInts().stream().filter(i -> i.bus() == 0).toList()).containsExactly(
                new IoInt(0, 0xd, 0, 1 << 2, 2, 17), new IoInt(0, 0xd, 0, 2 << 2, 2, 18), new IoInt(0, 0xd, 0, 5 << 2, 2, 17));
    }

    @Test
    void ioapicIdCanBeGiven() {
        MpTable.write(mem, 3, MpTable.Options.DEFAULT.withIoapicId(1));
        Parsed t = parse();
        assertThat(t.ioapics()).containsExactly(new Ioapic(1, 0x11, 1, 0xfec00000L));
        assertThat(t.ioInts()).allMatch(i -> i.ioapic() == 1);
        assertThatThrownBy(() -> MpTable.Options.DEFAULT.withIoapicId(0xff)).hasMessageContaining("IOAPIC id 255");
    }

    @Test
    void badPciInterruptsAreNamed() {
        assertThatThrownBy(() -> new MpTable.PciInterrupt(32, 1, 16)).hasMessageContaining("slot 32");
        assertThatThrownBy(() -> new MpTable.PciInterrupt(1, 5, 16)).hasMessageContaining("pin 5");
        assertThatThrownBy(() -> new MpTable.Options(0x11, false, Set.of(),
                List.of(new MpTable.PciInterrupt(1, 1, 16), new MpTable.PciInterrupt(1, 1, 17))))
                .hasMessageContaining("routed twice");
    }

    @Test
    void cpuCountLimits() {
        assertThatThrownBy(() -> MpTable.write(mem, 0)).isInstanceOf(BootException.class);
        assertThatThrownBy(() -> MpTable.write(mem, 255)).isInstanceOf(BootException.class).hasMessageContaining("254");
    }

    @Test
    void needsRamAtTheEbda() {
        try (GuestMemory high = new GuestMemory(List.of(MemoryRegion.anonymous(0x100000, 0x100000)))) {
            assertThatThrownBy(() -> MpTable.write(high, 1)).isInstanceOf(BootException.class)
                    .hasMessageContaining("outside guest RAM");
        }
    }
}
