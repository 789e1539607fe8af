package dev.kindling.memory;

import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.Mapping;
import java.lang.foreign.MemorySegment;
import java.util.Optional;

/**
 * A contiguous piece of guest-physical address space backed by host memory: anonymous, or a shared
 * mapping of a memfd or file so that another VM or the host program can map the same pages, or a
 * private copy-on-write mapping of a file (a snapshot's memory).
 */
public final class MemoryRegion implements AutoCloseable {
    private final long guestAddress;
    private final Mapping mapping;
    private final Fd fd;
    private final long fileOffset;

    private MemoryRegion(long guestAddress, Mapping mapping, Fd fd, long fileOffset) {
        this.guestAddress = guestAddress;
        this.mapping = mapping;
        this.fd = fd;
        this.fileOffset = fileOffset;
    }

    private static void checkPlacement(long guestAddress, long size) {
        long page = Libc.pageSize();
        if (size <= 0 || size % page != 0) {
            throw new IllegalArgumentException("region size 0x" + Long.toHexString(size) + " is not a positive multiple of the page size");
        }
        if (guestAddress < 0 || guestAddress % page != 0) {
            throw new IllegalArgumentException("region address 0x" + Long.toHexString(guestAddress) + " is not page-aligned");
        }
        if (guestAddress + size < guestAddress) {
            throw new IllegalArgumentException("region [0x" + Long.toHexString(guestAddress) + ", +0x" + Long.toHexString(size) + ") overflows");
        }
    }

    /** Private anonymous memory, populated on first touch. */
    public static MemoryRegion anonymous(long guestAddress, long size) {
        checkPlacement(guestAddress, size);
        return new MemoryRegion(guestAddress, Mapping.anonymous(size), null, 0);
    }

    /** A new memfd of {@code size} bytes, mapped shared; {@link #fd()} gives it to others. */
    public static MemoryRegion memfd(String name, long guestAddress, long size) {
        checkPlacement(guestAddress, size);
        Fd fd = Fd.adopt(Libc.memfdCreate(name, Libc.MFD_ALLOW_SEALING), "memfd " + name);
        try {
            Libc.ftruncate(fd, size);
            return new MemoryRegion(guestAddress, Mapping.shared(fd, 0, size), fd, 0);
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
    }

    /**
     * A shared mapping of {@code size} bytes of {@code fd} from {@code fileOffset}. The region takes
     * ownership of {@code fd} and closes it; the file must be at least {@code fileOffset + size} long.
     */
    public static MemoryRegion shared(Fd fd, long fileOffset, long guestAddress, long size) {
        try {
            checkPlacement(guestAddress, size);
            checkFileSize(fd, fileOffset, size);
            return new MemoryRegion(guestAddress, Mapping.shared(fd, fileOffset, size), fd, fileOffset);
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
    }

    /**
     * A private copy-on-write mapping of {@code size} bytes of {@code fd} from {@code fileOffset}:
     * pages are read from the file on first touch and writes stay in this region (a snapshot's
     * memory for a restored VM or a clone). Takes ownership of {@code fd}; the file must be at least
     * {@code fileOffset + size} long.
     */
    public static MemoryRegion privateCopy(Fd fd, long fileOffset, long guestAddress, long size) {
        try {
            checkPlacement(guestAddress, size);
            checkFileSize(fd, fileOffset, size);
            return new MemoryRegion(guestAddress, Mapping.privateOf(fd, fileOffset, size), fd, fileOffset);
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
    }

    private static void checkFileSize(Fd fd, long fileOffset, long size) {
        long fileSize = Libc.fileSize(fd);
        if (fileOffset < 0 || fileOffset > fileSize || size > fileSize - fileOffset) {
            throw new IllegalArgumentException(fd.what() + " has 0x" + Long.toHexString(fileSize)
                    + " bytes, too few for 0x" + Long.toHexString(size) + " at offset 0x" + Long.toHexString(fileOffset));
        }
    }

    public long guestAddress() {
        return guestAddress;
    }

    public long size() {
        return mapping.length();
    }

    /** One past the last guest-physical address. */
    public long end() {
        return guestAddress + size();
    }

    public boolean contains(long gpa) {
        return gpa >= guestAddress && gpa - guestAddress < size();
    }

    /**
     * The host memory: index 0 is {@link #guestAddress()}. Accesses after {@link #close()} throw
     * {@link IllegalStateException} (the mapping's arena is closed) rather than touch unmapped memory.
     */
    public MemorySegment segment() {
        return mapping.segment();
    }

    /** The backing descriptor for memfd and file regions. */
    public Optional<Fd> fd() {
        return Optional.ofNullable(fd);
    }

    public long fileOffset() {
        return fileOffset;
    }

    @Override
    public void close() {
        mapping.close();
        if (fd != null) {
            fd.close();
        }
    }

    @Override
    public String toString() {
        return "MemoryRegion[0x" + Long.toHexString(guestAddress) + "-0x" + Long.toHexString(end() - 1)
                + (fd != null ? ", " + fd.what() : ", anonymous") + "]";
    }
}
