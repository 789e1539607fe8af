package dev.kindling.memory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Guest-physical memory: non-overlapping {@link MemoryRegion}s. Every access is checked: an address
 * outside RAM, a length that overflows or a range that leaves its region fails with
 * {@link GuestMemoryException} and touches nothing. Multi-byte values are little-endian.
 */
public final class GuestMemory implements AutoCloseable {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;
    /** Aligned, so that acquire and release are single atomic accesses, as the driver's are. */
    private static final VarHandle ORDERED16 = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN).varHandle();
    private static final VarHandle ORDERED32 = ValueLayout.JAVA_INT.withOrder(ByteOrder.LITTLE_ENDIAN).varHandle();

    private final MemoryRegion[] regions;
    private final long[] starts;

    /** Takes ownership of {@code regions}; closing this memory closes them. */
    public GuestMemory(List<MemoryRegion> regions) {
        List<MemoryRegion> sorted = new ArrayList<>(regions);
        sorted.sort(Comparator.comparingLong(MemoryRegion::guestAddress));
        for (int i = 1; i < sorted.size(); i++) {
            if (sorted.get(i).guestAddress() < sorted.get(i - 1).end()) {
                throw new IllegalArgumentException("memory regions overlap: " + sorted.get(i - 1) + " and " + sorted.get(i));
            }
        }
        this.regions = sorted.toArray(MemoryRegion[]::new);
        this.starts = sorted.stream().mapToLong(MemoryRegion::guestAddress).toArray();
    }

    public List<MemoryRegion> regions() {
        return List.of(regions);
    }

    /** Total bytes of RAM. */
    public long size() {
        long total = 0;
        for (MemoryRegion r : regions) {
            total += r.size();
        }
        return total;
    }

    /** The region holding {@code gpa}, or null. */
    public MemoryRegion regionAt(long gpa) {
        int lo = 0, hi = starts.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (Long.compareUnsigned(starts[mid], gpa) <= 0) {
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        if (hi < 0) {
            return null;
        }
        MemoryRegion r = regions[hi];
        return r.contains(gpa) ? r : null;
    }

    /** True if all of {@code [gpa, gpa + length)} is RAM in one region. */
    public boolean isValid(long gpa, long length) {
        if (length < 0 || gpa < 0) {
            return false;
        }
        MemoryRegion r = regionAt(gpa);
        return r != null && length <= r.end() - gpa;
    }

    /** The host memory behind {@code [gpa, gpa + length)}, which must lie in one region. */
    public MemorySegment slice(long gpa, long length) {
        if (length < 0) {
            throw new GuestMemoryException(gpa, length, "negative length");
        }
        MemoryRegion r = regionAt(gpa);
        if (r == null) {
            throw new GuestMemoryException(gpa, length, "address is not guest RAM");
        }
        if (length > r.end() - gpa) {
            throw new GuestMemoryException(gpa, length, "range leaves " + r);
        }
        return r.segment().asSlice(gpa - r.guestAddress(), length);
    }

    public byte read8(long gpa) {
        return slice(gpa, 1).get(ValueLayout.JAVA_BYTE, 0);
    }

    public short read16(long gpa) {
        return slice(gpa, 2).get(U16, 0);
    }

    public int read32(long gpa) {
        return slice(gpa, 4).get(U32, 0);
    }

    public long read64(long gpa) {
        return slice(gpa, 8).get(U64, 0);
    }

    public void write8(long gpa, byte v) {
        slice(gpa, 1).set(ValueLayout.JAVA_BYTE, 0, v);
    }

    public void write16(long gpa, short v) {
        slice(gpa, 2).set(U16, 0, v);
    }

    public void write32(long gpa, int v) {
        slice(gpa, 4).set(U32, 0, v);
    }

    public void write64(long gpa, long v) {
        slice(gpa, 8).set(U64, 0, v);
    }

    /**
     * Loads the 16-bit value at {@code gpa} with acquire semantics: no later access of this thread is
     * ordered before it (a ring index, then the entries it covers). {@code gpa} must be 2-aligned.
     */
    public short loadAcquire16(long gpa) {
        return (short) ORDERED16.getAcquire(aligned(gpa, 2), 0L);
    }

    /** As {@link #loadAcquire16} for 32 bits; {@code gpa} must be 4-aligned. */
    public int loadAcquire32(long gpa) {
        return (int) ORDERED32.getAcquire(aligned(gpa, 4), 0L);
    }

    /**
     * Stores the 16-bit value with release semantics: every earlier access of this thread is visible
     * before it (used-ring entries, then the index that publishes them). {@code gpa} must be 2-aligned.
     */
    public void storeRelease16(long gpa, short value) {
        ORDERED16.setRelease(aligned(gpa, 2), 0L, value);
    }

    /** As {@link #storeRelease16} for 32 bits; {@code gpa} must be 4-aligned. */
    public void storeRelease32(long gpa, int value) {
        ORDERED32.setRelease(aligned(gpa, 4), 0L, value);
    }

    /**
     * A full fence: stores before it are visible before loads after it (publish a used index, then
     * read whether the driver wants an interrupt).
     */
    public static void fullFence() {
        VarHandle.fullFence();
    }

    private MemorySegment aligned(long gpa, int size) {
        if ((gpa & (size - 1)) != 0) {
            throw new GuestMemoryException(gpa, size, "not " + size + "-byte aligned");
        }
        return slice(gpa, size);
    }

    public void read(long gpa, byte[] dst) {
        MemorySegment.copy(slice(gpa, dst.length), ValueLayout.JAVA_BYTE, 0, dst, 0, dst.length);
    }

    public byte[] read(long gpa, int length) {
        byte[] b = new byte[length];
        read(gpa, b);
        return b;
    }

    public void write(long gpa, byte[] src) {
        MemorySegment.copy(src, 0, slice(gpa, src.length), ValueLayout.JAVA_BYTE, 0, src.length);
    }

    public void write(long gpa, MemorySegment src) {
        slice(gpa, src.byteSize()).copyFrom(src);
    }

    @Override
    public void close() {
        for (MemoryRegion r : regions) {
            r.close();
        }
    }
}
