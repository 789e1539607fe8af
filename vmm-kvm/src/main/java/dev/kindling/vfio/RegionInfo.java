package dev.kindling.vfio;

import static dev.kindling.sys.CLayouts.offsetOf;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * One region of a VFIO device: where it is in the device fd ({@code offset}), its size, what it
 * allows ({@link VfioConstants}{@code .REGION_INFO_FLAG_*}) and, from its capability chain, the
 * parts that may be mmapped ({@code sparseMmap}, empty: the whole region if {@link #mmappable()}).
 */
public record RegionInfo(int index, int flags, long size, long offset, List<Area> sparseMmap, Optional<Type> type) {
    private static final long FLAGS = offsetOf(VfioStructs.VFIO_REGION_INFO, "flags"),
            INDEX = offsetOf(VfioStructs.VFIO_REGION_INFO, "index"),
            CAP_OFFSET = offsetOf(VfioStructs.VFIO_REGION_INFO, "cap_offset"),
            SIZE = offsetOf(VfioStructs.VFIO_REGION_INFO, "size"),
            OFFSET = offsetOf(VfioStructs.VFIO_REGION_INFO, "offset"),
            CAP_ID = offsetOf(VfioStructs.VFIO_INFO_CAP_HEADER, "id"),
            CAP_NEXT = offsetOf(VfioStructs.VFIO_INFO_CAP_HEADER, "next"),
            NR_AREAS = offsetOf(VfioStructs.VFIO_REGION_INFO_CAP_SPARSE_MMAP, "nr_areas"),
            AREAS = offsetOf(VfioStructs.VFIO_REGION_INFO_CAP_SPARSE_MMAP, "areas"),
            AREA_OFFSET = offsetOf(VfioStructs.VFIO_REGION_SPARSE_MMAP_AREA, "offset"),
            AREA_SIZE = offsetOf(VfioStructs.VFIO_REGION_SPARSE_MMAP_AREA, "size"),
            TYPE = offsetOf(VfioStructs.VFIO_REGION_INFO_CAP_TYPE, "type"),
            SUBTYPE = offsetOf(VfioStructs.VFIO_REGION_INFO_CAP_TYPE, "subtype");
    private static final long AREA_BYTES = VfioStructs.VFIO_REGION_SPARSE_MMAP_AREA.byteSize();

    /** An mmap-able part of a region: offset within the region and size. */
    public record Area(long offset, long size) {}

    /** The region's VFIO_REGION_INFO_CAP_TYPE. */
    public record Type(int type, int subtype) {}

    public RegionInfo {
        sparseMmap = List.copyOf(sparseMmap);
    }

    public boolean readable() {
        return (flags & VfioConstants.REGION_INFO_FLAG_READ) != 0;
    }

    public boolean writable() {
        return (flags & VfioConstants.REGION_INFO_FLAG_WRITE) != 0;
    }

    public boolean mmappable() {
        return (flags & VfioConstants.REGION_INFO_FLAG_MMAP) != 0;
    }

    /**
     * Parses what VFIO_DEVICE_GET_REGION_INFO left in {@code info} (the struct, then its capabilities).
     * A chain that points outside the buffer, loops, or holds an area outside the region is a {@link VfioException}.
     */
    public static RegionInfo parse(MemorySegment info) {
        int flags = info.get(JAVA_INT, FLAGS);
        int index = info.get(JAVA_INT, INDEX);
        long size = info.get(JAVA_LONG, SIZE);
        long offset = info.get(JAVA_LONG, OFFSET);
        List<Area> areas = new ArrayList<>();
        Type type = null;
        if ((flags & VfioConstants.REGION_INFO_FLAG_CAPS) != 0) {
            long at = Integer.toUnsignedLong(info.get(JAVA_INT, CAP_OFFSET));
            long header = VfioStructs.VFIO_INFO_CAP_HEADER.byteSize();
            for (int seen = 0; at != 0; seen++) {
                if (seen > info.byteSize() / header || at < VfioStructs.VFIO_REGION_INFO.byteSize()
                        || at > info.byteSize() - header) {
                    throw new VfioException("region " + index + ": capability chain runs outside its " + info.byteSize()
                            + " bytes or loops (at " + at + ")");
                }
                MemorySegment cap = info.asSlice(at);
                try {
                    switch (Short.toUnsignedInt(cap.get(JAVA_SHORT, CAP_ID))) {
                        case VfioConstants.REGION_INFO_CAP_SPARSE_MMAP -> {
                            long n = Integer.toUnsignedLong(cap.get(JAVA_INT, NR_AREAS));
                            for (long i = 0; i < n; i++) {
                                long o = cap.get(JAVA_LONG, AREAS + i * AREA_BYTES + AREA_OFFSET);
                                long s = cap.get(JAVA_LONG, AREAS + i * AREA_BYTES + AREA_SIZE);
                                if (o < 0 || s < 0 || Long.compareUnsigned(o + s, size) > 0 || o + s < o) {
                                    throw new VfioException("region " + index + ": sparse mmap area at " + o + " of " + s
                                            + " bytes is outside its " + size + " bytes");
                                }
                                areas.add(new Area(o, s));
                            }
                        }
                        case VfioConstants.REGION_INFO_CAP_TYPE -> type = new Type(cap.get(JAVA_INT, TYPE), cap.get(JAVA_INT, SUBTYPE));
                        default -> {
                            // a capability Kindling does not use
                        }
                    }
                } catch (IndexOutOfBoundsException e) {
                    throw new VfioException("region " + index + ": a capability at " + at + " runs past the "
                            + info.byteSize() + " bytes the kernel returned", e);
                }
                at = Integer.toUnsignedLong(cap.get(JAVA_INT, CAP_NEXT));
            }
        }
        return new RegionInfo(index, flags, size, offset, areas, Optional.ofNullable(type));
    }
}
