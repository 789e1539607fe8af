package dev.kindling.boot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.memory.GuestMemory;
import java.util.List;
import org.junit.jupiter.api.Test;

class MicrovmLayoutTest {
    private static final long MIB = 1L << 20;
    private static final long GIB = 1L << 30;

    @Test
    void smallMachineIsOneRangeBelow4G() {
        assertThat(MicrovmLayout.ramRanges(64 * MIB)).containsExactly(new AddressRange(0, 64 * MIB));
        assertThat(MicrovmLayout.e820(64 * MIB)).containsExactly(
                E820Entry.ram(0, 0x9fc00),
                E820Entry.reserved(0x9fc00, 0x100000 - 0x9fc00),
                E820Entry.ram(0x100000, 64 * MIB - 0x100000));
    }

    @Test
    void justBelowTheThresholdStaysBelow4G() {
        long size = 0xb000_0000L - 0x1000;
        assertThat(MicrovmLayout.ramRanges(size)).containsExactly(new AddressRange(0, size));
        assertThat(MicrovmLayout.lowRamSize(size)).isEqualTo(size);
    }

    @Test
    void threeGibIsSplitAroundTheHole() {
        long size = 3 * GIB; // >= 0xb0000000
        assertThat(MicrovmLayout.ramRanges(size)).containsExactly(
                new AddressRange(0, 2 * GIB), new AddressRange(4 * GIB, GIB));
        assertThat(MicrovmLayout.e820(size)).containsExactly(
                E820Entry.ram(0, 0x9fc00),
                E820Entry.reserved(0x9fc00, 0x60400),
                E820Entry.ram(0x100000, 2 * GIB - 0x100000),
                E820Entry.ram(4 * GIB, GIB));
    }

    @Test
    void thresholdItselfIsSplit() {
        assertThat(MicrovmLayout.ramRanges(0xb000_0000L)).containsExactly(
                new AddressRange(0, 0x8000_0000L), new AddressRange(4 * GIB, 0x3000_0000L));
    }

    @Test
    void eightGib() {
        long size = 8 * GIB;
        assertThat(MicrovmLayout.ramRanges(size)).containsExactly(
                new AddressRange(0, 2 * GIB), new AddressRange(4 * GIB, 6 * GIB));
        List<E820Entry> e820 = MicrovmLayout.e820(size);
        assertThat(e820).containsExactly(
                E820Entry.ram(0, 0x9fc00),
                E820Entry.reserved(0x9fc00, 0x60400),
                E820Entry.ram(0x100000, 2 * GIB - 0x100000),
                E820Entry.ram(4 * GIB, 6 * GIB));
        long ram = e820.stream().filter(e -> e.type() == E820Entry.RAM).mapToLong(E820Entry::size).sum();
        assertThat(ram).isEqualTo(size - 0x60400); // everything but the reserved EBDA-to-1-MiB area
    }

    @Test
    void e820FromMemoryMatchesTheLayout() {
        try (GuestMemory mem = MicrovmLayout.anonymousMemory(64 * MIB)) {
            assertThat(mem.regions()).hasSize(1);
            assertThat(MicrovmLayout.e820(mem)).isEqualTo(MicrovmLayout.e820(64 * MIB));
        }
    }

    @Test
    void rejectsUnsupportedSizes() {
        assertThatThrownBy(() -> MicrovmLayout.ramRanges(0)).isInstanceOf(BootException.class);
        assertThatThrownBy(() -> MicrovmLayout.ramRanges(MIB)).isInstanceOf(BootException.class);
        assertThatThrownBy(() -> MicrovmLayout.ramRanges(64 * MIB + 1)).isInstanceOf(BootException.class)
                .hasMessageContaining("multiple of 4 KiB");
    }

    @Test
    void bootAreasAreDisjointAndBelowHighMemory() {
        List<MicrovmLayout.Area> areas = MicrovmLayout.BOOT_AREAS;
        for (int i = 0; i < areas.size(); i++) {
            assertThat(areas.get(i).range().end()).isLessThanOrEqualTo(MicrovmLayout.HIMEM_START);
            for (int j = i + 1; j < areas.size(); j++) {
                assertThat(areas.get(i).range().overlaps(areas.get(j).range()))
                        .as(areas.get(i) + " vs " + areas.get(j)).isFalse();
            }
        }
        // the zero page and the PVH structures no longer share 0x7000 as in Firecracker
        assertThat(MicrovmLayout.ZERO_PAGE_START + MicrovmLayout.ZERO_PAGE_SIZE).isLessThanOrEqualTo(MicrovmLayout.PVH_START_INFO);
        assertThat(MicrovmLayout.IDT_START + 8).isLessThanOrEqualTo(0x600);
        assertThat(MicrovmLayout.GDT_START + 8L * BootGdt.entries()).isLessThanOrEqualTo(MicrovmLayout.IDT_START);
        assertThat(MicrovmLayout.PDE_START + 0x1000L * PageTables.MAX_GIB).isEqualTo(MicrovmLayout.PAGE_TABLES_END);
        assertThat(MicrovmLayout.overlappedBootArea(new AddressRange(0x8ff0, 0x10)).name()).isEqualTo("boot stack");
        assertThat(MicrovmLayout.overlappedBootArea(new AddressRange(0x100000, 0x1000))).isNull();
    }

    @Test
    void virtioTransportsAreInTheHole() {
        long last = MicrovmLayout.VIRTIO_MMIO_BASE + MicrovmLayout.VIRTIO_MAX_TRANSPORTS * MicrovmLayout.VIRTIO_MMIO_SIZE;
        assertThat(MicrovmLayout.VIRTIO_MMIO_BASE).isGreaterThanOrEqualTo(MicrovmLayout.MMIO_HOLE_START);
        assertThat(last).isLessThan(MicrovmLayout.IOAPIC_ADDRESS);
        assertThat(MicrovmLayout.VIRTIO_IRQ_BASE + MicrovmLayout.VIRTIO_MAX_TRANSPORTS).isLessThanOrEqualTo(MicrovmLayout.IOAPIC_PINS);
    }
}
