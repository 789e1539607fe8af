package dev.kindling.memory;

import dev.kindling.boot.AddressRange;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
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
 *
 * <p>Each region's mapping lives in a shared arena, so an access after {@link #close()}, from any
 * thread, through these methods or a segment {@link #slice} returned earlier, fails with an exception
 * ({@link GuestMemoryClosedException} here, FFM's {@link IllegalStateException} on a slice) and never
 * touches unmapped memory.
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
    private volatile boolean closed;

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

    /**
     * Guest memory of {@code layout}'s ranges, each a private copy-on-write mapping of {@code file}
     * at consecutive offsets in guest-address order, as {@link #saveTo} wrote them. {@code file} is
     * borrowed (each region maps a dup of it), so many memories may map one snapshot. The file must
     * be exactly the layout's total size.
     */
    public static GuestMemory mapPrivate(Fd file, List<AddressRange> layout) {
        List<AddressRange> sorted = new ArrayList<>(layout);
        sorted.sort(Comparator.comparingLong(AddressRange::start));
        long total = 0;
        for (AddressRange r : sorted) {
            total += r.size();
        }
        long fileSize = Libc.fileSize(file);
        if (fileSize != total) {
            throw new IllegalArgumentException(file.what() + " has 0x" + Long.toHexString(fileSize)
                    + " bytes, not the 0x" + Long.toHexString(total) + " of guest memory " + sorted);
        }
        List<MemoryRegion> regions = new ArrayList<>();
        try {
            long offset = 0;
            for (AddressRange r : sorted) {
                regions.add(MemoryRegion.privateCopy(file.dup(), offset, r.start(), r.size()));
                offset += r.size();
            }
            return new GuestMemory(regions);
        } catch (RuntimeException e) {
            regions.forEach(MemoryRegion::close);
            throw e;
        }
    }

    /** The guest-physical ranges of the regions, in address order. */
    public List<AddressRange> layout() {
        List<AddressRange> ranges = new ArrayList<>(regions.length);
        for (MemoryRegion r : regions) {
            ranges.add(new AddressRange(r.guestAddress(), r.size()));
        }
        return ranges;
    }

    /**
     * Writes every region, in guest-address order, consecutively from offset 0 of {@code out}. The
     * file is first truncated to {@link #size()}, and all-zero pages are not written, so they stay
     * holes. Returns the bytes of data written. The guest must not run meanwhile (the machine paused).
     */
    public long saveTo(Fd out) {
        if (closed) {
            throw new GuestMemoryClosedException(0, size(), null);
        }
        Libc.ftruncate(out, 0);
        Libc.ftruncate(out, size());
        long page = Libc.pageSize();
        long written = 0;
        long fileOffset = 0;
        try (Arena arena = Arena.ofConfined();
                java.nio.channels.FileChannel pagemap = java.nio.channels.FileChannel.open(PAGEMAP)) {
            MemorySegment zero = arena.allocate(page, page);
            java.nio.ByteBuffer entries = java.nio.ByteBuffer.allocateDirect(PAGEMAP_CHUNK * 8).order(java.nio.ByteOrder.nativeOrder());
            for (MemoryRegion r : regions) {
                written += saveRegion(r, out, fileOffset, zero, page, pagemap, entries);
                fileOffset += r.size();
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (IllegalStateException e) {
            if (closed) {
                throw new GuestMemoryClosedException(0, size(), e);
            }
            throw e;
        }
        return written;
    }

    /** Largest run of data pages given to one pwrite. */
    private static final long SAVE_CHUNK = 64L << 20;

    private static long saveRegion(MemoryRegion r, Fd out, long fileOffset, MemorySegment zero, long page,
            java.nio.channels.FileChannel pagemap, java.nio.ByteBuffer entries) throws IOException {
        MemorySegment seg = r.segment();
        long pages = seg.byteSize() / page;
        // an anonymous page the process never touched is zero: known from the page map without
        // faulting it in (a file's page that is not mapped may still hold data, so only anonymous)
        boolean anonymous = r.fd().isEmpty();
        long written = 0;
        long runStart = -1;
        for (long chunk = 0; chunk < pages; chunk += PAGEMAP_CHUNK) {
            int n = (int) Math.min(PAGEMAP_CHUNK, pages - chunk);
            if (anonymous) {
                readPagemap(pagemap, entries, seg.address() / page + chunk, n);
            }
            for (int i = 0; i < n; i++) {
                long at = (chunk + i) * page;
                boolean untouched = anonymous && (entries.getLong(i * 8) & (PM_PRESENT | PM_SWAPPED)) == 0;
                boolean data = !untouched && !isZero(seg, at, zero, page);
                if (data && runStart < 0) {
                    runStart = at;
                } else if (runStart >= 0 && (!data || at - runStart >= SAVE_CHUNK)) {
                    written += writeFully(out, seg.asSlice(runStart, at - runStart), fileOffset + runStart);
                    runStart = data ? at : -1;
                }
            }
        }
        if (runStart >= 0) {
            written += writeFully(out, seg.asSlice(runStart, seg.byteSize() - runStart), fileOffset + runStart);
        }
        return written;
    }

    private static void readPagemap(java.nio.channels.FileChannel pagemap, java.nio.ByteBuffer entries, long firstPage, int n)
            throws IOException {
        entries.clear().limit(n * 8);
        long at = firstPage * 8;
        while (entries.hasRemaining()) {
            if (pagemap.read(entries, at + entries.position()) < 0) {
                throw new IllegalStateException("/proc/self/pagemap ended early");
            }
        }
    }

    private static boolean isZero(MemorySegment seg, long at, MemorySegment zero, long page) {
        return MemorySegment.mismatch(seg, at, at + page, zero, 0, page) < 0;
    }

    private static long writeFully(Fd out, MemorySegment data, long offset) {
        long done = 0;
        long length = data.byteSize();
        while (done < length) {
            long n = Libc.pwrite(out, data.asSlice(done), length - done, offset + done);
            if (n == 0) {
                throw new IllegalStateException("pwrite(" + out.what() + ") wrote nothing at offset " + (offset + done));
            }
            done += n;
        }
        return length;
    }

    /**
     * A new sealed memfd holding this memory (see {@link #saveTo}): it can never be written, grown or
     * shrunk again, so clones may map it privately ({@link #mapPrivate}) for as long as they live.
     */
    public Fd saveToMemfd(String name) {
        Fd fd = Fd.adopt(Libc.memfdCreate(name, Libc.MFD_ALLOW_SEALING), "memfd " + name);
        try {
            saveTo(fd);
            Libc.addSeals(fd, Libc.F_SEAL_WRITE | Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW | Libc.F_SEAL_SEAL);
            return fd;
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
    }

    /**
     * Host bytes of this memory that are its own, not pages of the file it maps: for a private
     * mapping, the pages written since (copied on write); for anonymous memory, every page touched.
     * Counted per page from /proc/self/pagemap (present or swapped, and not a file page), so that it
     * holds whatever the kernel merged the regions' mappings with.
     */
    public long privateBytes() {
        long page = Libc.pageSize();
        long pages = 0;
        try (java.nio.channels.FileChannel map = java.nio.channels.FileChannel.open(PAGEMAP)) {
            java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocateDirect(PAGEMAP_CHUNK * 8).order(java.nio.ByteOrder.nativeOrder());
            for (MemoryRegion r : regions) {
                long first = r.segment().address() / page;
                long count = r.size() / page;
                for (long done = 0; done < count; ) {
                    int n = (int) Math.min(PAGEMAP_CHUNK, count - done);
                    readPagemap(map, buf, first + done, n);
                    for (int i = 0; i < n; i++) {
                        long e = buf.getLong(i * 8);
                        if ((e & (PM_PRESENT | PM_SWAPPED)) != 0 && (e & PM_FILE) == 0) {
                            pages++;
                        }
                    }
                    done += n;
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return pages * page;
    }

    private static final java.nio.file.Path PAGEMAP = java.nio.file.Path.of("/proc/self/pagemap");
    private static final int PAGEMAP_CHUNK = 8192;
    private static final long PM_PRESENT = 1L << 63, PM_SWAPPED = 1L << 62, PM_FILE = 1L << 61;

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
        if (closed) {
            throw new GuestMemoryClosedException(gpa, length, null);
        }
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
        try {
            return slice(gpa, 1).get(ValueLayout.JAVA_BYTE, 0);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, 1);
        }
    }

    public short read16(long gpa) {
        try {
            return slice(gpa, 2).get(U16, 0);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, 2);
        }
    }

    public int read32(long gpa) {
        try {
            return slice(gpa, 4).get(U32, 0);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, 4);
        }
    }

    public long read64(long gpa) {
        try {
            return slice(gpa, 8).get(U64, 0);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, 8);
        }
    }

    public void write8(long gpa, byte v) {
        try {
            slice(gpa, 1).set(ValueLayout.JAVA_BYTE, 0, v);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, 1);
        }
    }

    public void write16(long gpa, short v) {
        try {
            slice(gpa, 2).set(U16, 0, v);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, 2);
        }
    }

    public void write32(long gpa, int v) {
        try {
            slice(gpa, 4).set(U32, 0, v);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, 4);
        }
    }

    public void write64(long gpa, long v) {
        try {
            slice(gpa, 8).set(U64, 0, v);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, 8);
        }
    }

    /**
     * Loads the 16-bit value at {@code gpa} with acquire semantics: no later access of this thread is
     * ordered before it (a ring index, then the entries it covers). {@code gpa} must be 2-aligned.
     */
    public short loadAcquire16(long gpa) {
        try {
            return (short) ORDERED16.getAcquire(aligned(gpa, 2), 0L);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, 2);
        }
    }

    /** As {@link #loadAcquire16} for 32 bits; {@code gpa} must be 4-aligned. */
    public int loadAcquire32(long gpa) {
        try {
            return (int) ORDERED32.getAcquire(aligned(gpa, 4), 0L);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, 4);
        }
    }

    /**
     * Stores the 16-bit value with release semantics: every earlier access of this thread is visible
     * before it (used-ring entries, then the index that publishes them). {@code gpa} must be 2-aligned.
     */
    public void storeRelease16(long gpa, short value) {
        try {
            ORDERED16.setRelease(aligned(gpa, 2), 0L, value);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, 2);
        }
    }

    /** As {@link #storeRelease16} for 32 bits; {@code gpa} must be 4-aligned. */
    public void storeRelease32(long gpa, int value) {
        try {
            ORDERED32.setRelease(aligned(gpa, 4), 0L, value);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, 4);
        }
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
        try {
            MemorySegment.copy(slice(gpa, dst.length), ValueLayout.JAVA_BYTE, 0, dst, 0, dst.length);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, dst.length);
        }
    }

    public byte[] read(long gpa, int length) {
        byte[] b = new byte[length];
        read(gpa, b);
        return b;
    }

    public void write(long gpa, byte[] src) {
        try {
            MemorySegment.copy(src, 0, slice(gpa, src.length), ValueLayout.JAVA_BYTE, 0, src.length);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, src.length);
        }
    }

    public void write(long gpa, MemorySegment src) {
        try {
            slice(gpa, src.byteSize()).copyFrom(src);
        } catch (IllegalStateException e) {
            throw closedOr(e, gpa, src.byteSize());
        }
    }

    /** True until {@link #close()}. */
    public boolean isOpen() {
        return !closed;
    }

    /**
     * FFM's refusal of an access to a closed region as this memory's own exception; any other
     * {@link IllegalStateException} (a closed segment of the caller's) as it is.
     */
    private RuntimeException closedOr(IllegalStateException e, long gpa, long length) {
        if (e instanceof GuestMemoryClosedException) {
            return e;
        }
        MemoryRegion r = regionAt(gpa);
        if (closed || (r != null && !r.segment().scope().isAlive())) {
            return new GuestMemoryClosedException(gpa, length, e);
        }
        return e;
    }

    /**
     * Unmaps every region. Accesses from then on fail with an exception. Throws, leaving that region
     * mapped, if a native call still holds a segment of it; callers stop such users first.
     */
    @Override
    public void close() {
        closed = true;
        RuntimeException failure = null;
        for (MemoryRegion r : regions) {
            try {
                r.close();
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
}
