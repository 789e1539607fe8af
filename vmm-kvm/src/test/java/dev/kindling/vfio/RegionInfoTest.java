package dev.kindling.vfio;

import static dev.kindling.sys.CLayouts.offsetOf;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** What VFIO_DEVICE_GET_REGION_INFO returns, capability chains included, as the kernel lays it out. */
class RegionInfoTest {
    private static final int INFO = (int) VfioStructs.VFIO_REGION_INFO.byteSize();
    private final Arena arena = Arena.ofAuto();

    private MemorySegment info(int flags, long size, long offset, int capOffset, int bytes) {
        MemorySegment s = arena.allocate(bytes, 8);
        s.set(JAVA_INT, offsetOf(VfioStructs.VFIO_REGION_INFO, "argsz"), bytes);
        s.set(JAVA_INT, offsetOf(VfioStructs.VFIO_REGION_INFO, "flags"), flags);
        s.set(JAVA_INT, offsetOf(VfioStructs.VFIO_REGION_INFO, "index"), 1);
        s.set(JAVA_INT, offsetOf(VfioStructs.VFIO_REGION_INFO, "cap_offset"), capOffset);
        s.set(JAVA_LONG, offsetOf(VfioStructs.VFIO_REGION_INFO, "size"), size);
        s.set(JAVA_LONG, offsetOf(VfioStructs.VFIO_REGION_INFO, "offset"), offset);
        return s;
    }

    private static void header(MemorySegment s, int at, int id, int next) {
        s.set(JAVA_SHORT, at, (short) id);
        s.set(JAVA_SHORT, at + 2, (short) 1);
        s.set(JAVA_INT, at + 4, next);
    }

    @Test
    void aPlainRegion() {
        int flags = VfioConstants.REGION_INFO_FLAG_READ | VfioConstants.REGION_INFO_FLAG_WRITE | VfioConstants.REGION_INFO_FLAG_MMAP;
        RegionInfo r = RegionInfo.parse(info(flags, 0x1000, 0x10000000000L, 0, INFO));
        assertThat(r).isEqualTo(new RegionInfo(1, flags, 0x1000, 0x10000000000L, List.of(), Optional.empty()));
        assertThat(r.readable() && r.writable() && r.mmappable()).isTrue();
    }

    @Test
    void sparseMmapAreasAndATypeFromTheChain() {
        int sparse = INFO, type = INFO + 16 + 2 * 16;
        MemorySegment s = info(VfioConstants.REGION_INFO_FLAG_READ | VfioConstants.REGION_INFO_FLAG_CAPS, 0x4000, 0, sparse,
                type + 16);
        header(s, sparse, VfioConstants.REGION_INFO_CAP_SPARSE_MMAP, type);
        s.set(JAVA_INT, sparse + 8, 2);
        s.set(JAVA_LONG, sparse + 16, 0);
        s.set(JAVA_LONG, sparse + 24, 0x1000);
        s.set(JAVA_LONG, sparse + 32, 0x3000);
        s.set(JAVA_LONG, sparse + 40, 0x1000);
        header(s, type, VfioConstants.REGION_INFO_CAP_TYPE, 0);
        s.set(JAVA_INT, type + 8, 3);
        s.set(JAVA_INT, type + 12, 1);
        RegionInfo r = RegionInfo.parse(s);
        assertThat(r.sparseMmap()).containsExactly(new RegionInfo.Area(0, 0x1000), new RegionInfo.Area(0x3000, 0x1000));
        assertThat(r.type()).contains(new RegionInfo.Type(3, 1));
    }

    @Test
    void aChainThatLoopsOrLeavesTheBufferOrAnAreaOutsideTheRegionIsRefused() {
        MemorySegment loop = info(VfioConstants.REGION_INFO_FLAG_CAPS, 0x1000, 0, INFO, INFO + 16);
        header(loop, INFO, 99, INFO);
        assertThatThrownBy(() -> RegionInfo.parse(loop)).isInstanceOf(VfioException.class).hasMessageContaining("loops");

        MemorySegment outside = info(VfioConstants.REGION_INFO_FLAG_CAPS, 0x1000, 0, 4096, INFO + 16);
        assertThatThrownBy(() -> RegionInfo.parse(outside)).isInstanceOf(VfioException.class)
                .hasMessageContaining("runs outside");

        MemorySegment area = info(VfioConstants.REGION_INFO_FLAG_CAPS, 0x1000, 0, INFO, INFO + 32);
        header(area, INFO, VfioConstants.REGION_INFO_CAP_SPARSE_MMAP, 0);
        area.set(JAVA_INT, INFO + 8, 1);
        area.set(JAVA_LONG, INFO + 16, 0x800);
        area.set(JAVA_LONG, INFO + 24, 0x1000);
        assertThatThrownBy(() -> RegionInfo.parse(area)).isInstanceOf(VfioException.class)
                .hasMessageContaining("outside its 4096 bytes");

        MemorySegment truncated = info(VfioConstants.REGION_INFO_FLAG_CAPS, 0x1000, 0, INFO, INFO + 16);
        header(truncated, INFO, VfioConstants.REGION_INFO_CAP_SPARSE_MMAP, 0);
        truncated.set(JAVA_INT, INFO + 8, 5);
        assertThatThrownBy(() -> RegionInfo.parse(truncated)).isInstanceOf(VfioException.class)
                .hasMessageContaining("runs past");
    }
}
