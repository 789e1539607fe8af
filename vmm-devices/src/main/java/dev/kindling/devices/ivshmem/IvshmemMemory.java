package dev.kindling.devices.ivshmem;

import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.Mapping;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * The shared memory of an ivshmem device, host side: a descriptor (memfd, a file under /dev/shm or
 * hugetlbfs, or one a server passed) and a MAP_SHARED mapping of its first {@link #size()} bytes, which
 * the device maps into the guest as BAR2 and the host program reads and writes through
 * {@link #segment()}. Closing it unmaps the memory and closes the descriptor.
 */
public final class IvshmemMemory implements AutoCloseable {
    /**
     * The smallest size: a page, since the memory is mapped into the guest by pages (and a PCI memory
     * BAR smaller than a page would share its page with another BAR).
     */
    public static final long MIN_SIZE = 4096;

    private final Fd fd;
    private final Mapping mapping;

    private IvshmemMemory(Fd fd, Mapping mapping) {
        this.fd = fd;
        this.mapping = mapping;
    }

    /**
     * New anonymous shared memory of {@code size} bytes (a sealed memfd: it cannot shrink under a
     * mapping, so no peer can make another's accesses fault).
     */
    public static IvshmemMemory create(String name, long size) {
        checkSize(size);
        Fd fd = Fd.adopt(Libc.memfdCreate(name, Libc.MFD_CLOEXEC | Libc.MFD_ALLOW_SEALING), "memfd " + name);
        try {
            Libc.ftruncate(fd, size);
            Libc.addSeals(fd, Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW | Libc.F_SEAL_SEAL);
            return new IvshmemMemory(fd, Mapping.shared(fd, 0, size));
        } catch (RuntimeException | Error e) {
            fd.close();
            throw e;
        }
    }

    /** The first {@code size} bytes of an existing file (under /dev/shm or hugetlbfs). */
    public static IvshmemMemory open(Path file, long size) {
        checkSize(size);
        Fd fd = Fd.adopt(Libc.open(file.toString(), Libc.O_RDWR), file.toString());
        return mapChecked(fd, size);
    }

    /**
     * Takes ownership of {@code fd} (a server's shared memory) and maps its first {@code size} bytes.
     * On failure the descriptor is closed.
     */
    public static IvshmemMemory adopt(Fd fd, long size) {
        try {
            checkSize(size);
        } catch (IllegalArgumentException e) {
            fd.close();
            throw e;
        }
        return mapChecked(fd, size);
    }

    private static IvshmemMemory mapChecked(Fd fd, long size) {
        try {
            long have = Libc.fileSize(fd);
            if (have < size) {
                throw new IllegalArgumentException("shared memory " + fd.what() + " of " + have
                        + " bytes is smaller than the BAR of " + size + " bytes");
            }
            return new IvshmemMemory(fd, Mapping.shared(fd, 0, size));
        } catch (RuntimeException | Error e) {
            fd.close();
            throw e;
        }
    }

    private static void checkSize(long size) {
        if (size < MIN_SIZE || Long.bitCount(size) != 1) {
            throw new IllegalArgumentException("ivshmem size " + size + " must be a power of two (it is a PCI BAR)"
                    + " and at least " + MIN_SIZE + " bytes (the guest maps it by pages)");
        }
    }

    /** The mapped memory; accesses after {@link #close()} throw {@link IllegalStateException}. */
    public MemorySegment segment() {
        return mapping.segment();
    }

    /** The descriptor, still this object's. */
    public Fd fd() {
        return fd;
    }

    public long size() {
        return mapping.length();
    }

    @Override
    public void close() {
        try {
            mapping.close();
        } finally {
            fd.close();
        }
    }
}
