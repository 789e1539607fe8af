package dev.kindling.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.sys.Mapping;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.junit.jupiter.api.Test;

class GuestMemoryTest {
    private static GuestMemory twoRegions() {
        return new GuestMemory(List.of(
                MemoryRegion.anonymous(0, 0x10000),
                MemoryRegion.anonymous(0x100000, 0x10000)));
    }

    @Test
    void readsAndWritesLittleEndianValues() {
        try (GuestMemory m = twoRegions()) {
            m.write32(0x100, 0x11223344);
            assertThat(m.read8(0x100)).isEqualTo((byte) 0x44);
            assertThat(m.read16(0x102)).isEqualTo((short) 0x1122);
            m.write64(0x10fff8, -2L);
            assertThat(m.read64(0x10fff8)).isEqualTo(-2L);
            m.write(0x200, new byte[] {1, 2, 3});
            assertThat(m.read(0x200, 3)).containsExactly(1, 2, 3);
            assertThat(m.size()).isEqualTo(0x20000);
        }
    }

    @Test
    void accessesOutsideRamFailCleanly() {
        try (GuestMemory m = twoRegions()) {
            assertThatThrownBy(() -> m.read32(0x10000)).isInstanceOf(GuestMemoryException.class)
                    .hasMessageContaining("0x10000").hasMessageContaining("not guest RAM");
            assertThatThrownBy(() -> m.read32(0xfffe)).isInstanceOf(GuestMemoryException.class)
                    .hasMessageContaining("leaves");
            assertThatThrownBy(() -> m.slice(0x100000, Long.MAX_VALUE)).isInstanceOf(GuestMemoryException.class);
            assertThatThrownBy(() -> m.slice(-8, 4)).isInstanceOf(GuestMemoryException.class);
            assertThatThrownBy(() -> m.slice(0x100, -1)).isInstanceOf(GuestMemoryException.class);
            assertThatThrownBy(() -> m.write(0xffff0000L, new byte[1])).isInstanceOf(GuestMemoryException.class);
            assertThat(m.isValid(0xfff0, 0x10)).isTrue();
            assertThat(m.isValid(0xfff0, 0x11)).isFalse();
            assertThat(m.isValid(0x100000, Long.MAX_VALUE)).isFalse();
        }
    }

    @Test
    void overlappingRegionsAreRejected() {
        MemoryRegion a = MemoryRegion.anonymous(0, 0x2000);
        MemoryRegion b = MemoryRegion.anonymous(0x1000, 0x2000);
        try (a; b) {
            assertThatThrownBy(() -> new GuestMemory(List.of(a, b)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("overlap");
        }
    }

    @Test
    void badRegionPlacementIsRejected() {
        assertThatThrownBy(() -> MemoryRegion.anonymous(0x123, 0x1000)).hasMessageContaining("not page-aligned");
        assertThatThrownBy(() -> MemoryRegion.anonymous(0, 0x1001)).hasMessageContaining("page size");
        assertThatThrownBy(() -> MemoryRegion.anonymous(Long.MAX_VALUE & ~0xfffL, 0x2000)).hasMessageContaining("overflows");
    }

    @Test
    void memfdRegionIsSharedWithAnotherMapping() {
        try (MemoryRegion r = MemoryRegion.memfd("guest-ram", 0x100000, 0x4000);
                GuestMemory m = new GuestMemory(List.of(r));
                Mapping other = Mapping.shared(r.fd().orElseThrow(), 0, 0x4000)) {
            m.write32(0x101000, 0xcafe);
            assertThat(other.segment().get(ValueLayout.JAVA_INT, 0x1000)).isEqualTo(0xcafe);
        }
    }
}
