package dev.kindling.devices.virtio.blk;

import dev.kindling.sys.Errno;
import dev.kindling.sys.Fd;
import dev.kindling.sys.IoVec;
import dev.kindling.sys.Ioctl;
import dev.kindling.sys.Libc;
import dev.kindling.sys.SyscallException;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * A raw disk image, a regular file or a block device, opened for a virtio-blk device: O_RDWR or
 * O_RDONLY (with O_CLOEXEC) and locked with flock on its open file description, exclusively for
 * read-write and shared for read-only, so two VMs (or a VM and another program that locks) cannot
 * write one image by mistake. Its size is rounded down to whole 512-byte sectors: the bytes of a
 * partial last sector are not part of the disk and stay as they are.
 *
 * <p>Reads and writes go straight between the file and the caller's (guest) memory with
 * preadv/pwritev, repeated until done. Thread-safe: positioned calls only.
 */
public final class DiskImage implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(DiskImage.class.getName());
    /** {@code BLKSSZGET}: a block device's logical block size. */
    static final Ioctl BLKSSZGET = Ioctl.io("BLKSSZGET", 0x12, 104);
    /** {@code BLKROGET}: whether a block device is read-only. */
    static final Ioctl BLKROGET = Ioctl.io("BLKROGET", 0x12, 94);
    static final int S_IFREG = 0100000, S_IFDIR = 0040000, WRITE_BITS = 0222;
    private static final int EISDIR = 21, EROFS = 30, ETXTBSY = 26;
    private static final long ST_MODE = Libc.STAT_LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("st_mode"));
    private static final long ST_SIZE = Libc.STAT_LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("st_size"));
    /** The zeros written where a file system cannot zero a range itself. */
    private static final int ZERO_CHUNK = 64 * 1024;

    private final Path path;
    private final Fd fd;
    private final boolean readOnly;
    private final long size;
    private final int logicalBlockSize;
    private final Arena arena = Arena.ofShared();
    private MemorySegment zeros;

    private DiskImage(Path path, Fd fd, boolean readOnly, long size, int logicalBlockSize) {
        this.path = path;
        this.fd = fd;
        this.readOnly = readOnly;
        this.size = size;
        this.logicalBlockSize = logicalBlockSize;
    }

    /**
     * Opens and locks {@code path}.
     *
     * @throws NoSuchFileException the image does not exist
     * @throws AccessDeniedException no permission, or a read-only file or device opened read-write
     * @throws FileSystemException a directory or other non-disk, a read-only file system, or the
     *     image locked by another VM or process
     */
    public static DiskImage open(Path path, boolean readOnly) throws IOException {
        String name = path.toString();
        Fd fd;
        try {
            fd = Fd.adopt(Libc.open(name, readOnly ? Libc.O_RDONLY : Libc.O_RDWR), "disk image " + name);
        } catch (SyscallException e) {
            throw openFailure(path, readOnly, e);
        }
        try {
            return opened(path, fd, readOnly);
        } catch (IOException | RuntimeException | Error e) {
            fd.close();
            throw e;
        }
    }

    private static IOException openFailure(Path path, boolean readOnly, SyscallException e) {
        String name = path.toString();
        return switch (e.errno()) {
            case Errno.ENOENT -> new NoSuchFileException(name, null, "no such disk image");
            case Errno.EACCES, Errno.EPERM -> new AccessDeniedException(name, null,
                    readOnly ? "no permission to read the disk image" : "no permission to open the disk image read-write (read-only?)");
            case EROFS -> new FileSystemException(name, null, "the disk image is on a read-only file system: open it read-only");
            case EISDIR -> new FileSystemException(name, null, "is a directory, not a disk image");
            case ETXTBSY -> new FileSystemException(name, null, "the disk image is a running program");
            default -> new FileSystemException(name, null, "cannot open the disk image: " + e.getMessage());
        };
    }

    private static DiskImage opened(Path path, Fd fd, boolean readOnly) throws IOException {
        String name = path.toString();
        int mode;
        long statSize;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment stat = a.allocate(Libc.STAT_LAYOUT);
            Libc.fstat(fd, stat);
            mode = stat.get(ValueLayout.JAVA_INT, ST_MODE);
            statSize = stat.get(ValueLayout.JAVA_LONG, ST_SIZE);
        }
        int type = mode & Libc.S_IFMT;
        boolean blockDevice = type == Libc.S_IFBLK;
        if (type == S_IFDIR) {
            throw new FileSystemException(name, null, "is a directory, not a disk image");
        }
        if (type != S_IFREG && !blockDevice) {
            throw new FileSystemException(name, null, "is neither a regular file nor a block device");
        }
        if (!readOnly) {
            // root may open a file without write permission read-write; the mode says what its owner meant
            if (!blockDevice && (mode & WRITE_BITS) == 0) {
                throw new AccessDeniedException(name, null, "the disk image is read-only (mode 0"
                        + Integer.toOctalString(mode & 07777) + "): open it read-only");
            }
            if (blockDevice && intIoctl(fd, BLKROGET) != 0) {
                throw new AccessDeniedException(name, null, "the block device is read-only: open it read-only");
            }
        }
        if (!Libc.flock(fd, (readOnly ? Libc.LOCK_SH : Libc.LOCK_EX) | Libc.LOCK_NB)) {
            throw new FileSystemException(name, null, "the disk image is in use by another VM or process (it holds "
                    + (readOnly ? "an exclusive" : "a") + " lock on it)");
        }
        long bytes = blockDevice ? Libc.blockDeviceSize(fd) : statSize;
        int blockSize = blockDevice ? intIoctl(fd, BLKSSZGET) : BlkAbi.SECTOR_SIZE;
        if (blockSize < BlkAbi.SECTOR_SIZE || Integer.bitCount(blockSize) != 1) {
            throw new FileSystemException(name, null, "logical block size " + blockSize + " is not a power of two of at least 512");
        }
        long rounded = bytes & -BlkAbi.SECTOR_SIZE;
        if (rounded != bytes) {
            LOG.log(Level.WARNING, "disk image {0} is {1} bytes, not whole 512-byte sectors: the last {2} bytes are not part of the disk",
                    name, bytes, bytes - rounded);
        }
        return new DiskImage(path, fd, readOnly, rounded, blockSize);
    }

    private static int intIoctl(Fd fd, Ioctl request) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment value = a.allocate(ValueLayout.JAVA_INT);
            Libc.ioctl(fd, request, value);
            return value.get(ValueLayout.JAVA_INT, 0);
        }
    }

    public Path path() {
        return path;
    }

    public boolean readOnly() {
        return readOnly;
    }

    /** Bytes of the disk: whole sectors. */
    public long size() {
        return size;
    }

    /** The disk's size in 512-byte sectors (virtio-blk's capacity). */
    public long sectors() {
        return size >>> BlkAbi.SECTOR_SHIFT;
    }

    /** 512 for a file, the device's logical block size for a block device. */
    public int logicalBlockSize() {
        return logicalBlockSize;
    }

    /**
     * Reads {@code total} bytes at {@code offset} into {@code buffers[0..count)}, through {@code iov}
     * (room for {@code count} entries). Returns the bytes read: fewer than {@code total} only at the
     * end of the file (one that shrank since it was opened).
     */
    long read(MemorySegment[] buffers, int count, long total, long offset, IoVec.Array iov) {
        return transfer(false, buffers, count, total, offset, iov);
    }

    /** Writes {@code total} bytes of {@code buffers[0..count)} at {@code offset}; returns the bytes written. */
    long write(MemorySegment[] buffers, int count, long total, long offset, IoVec.Array iov) {
        return transfer(true, buffers, count, total, offset, iov);
    }

    private long transfer(boolean write, MemorySegment[] buffers, int count, long total, long offset, IoVec.Array iov) {
        long done = 0;
        int first = 0;
        long skip = 0;
        // Each pass moves at least one byte or ends: short counts (a signal, MAX_RW_COUNT, the end of
        // the file) go on from where they stopped.
        while (done < total) {
            iov.clear();
            iov.add(buffers[first].asSlice(skip));
            for (int i = first + 1; i < count; i++) {
                iov.add(buffers[i]);
            }
            long n = write
                    ? Libc.pwritev(fd, iov.segment(), iov.count(), offset + done)
                    : Libc.preadv(fd, iov.segment(), iov.count(), offset + done);
            if (n == 0) {
                break;
            }
            done += n;
            while (n > 0 && first < count) {
                long left = buffers[first].byteSize() - skip;
                if (n >= left) {
                    n -= left;
                    first++;
                    skip = 0;
                } else {
                    skip += n;
                    n = 0;
                }
            }
        }
        return done;
    }

    /** fdatasync: every write completed before it is on stable storage when it returns. */
    void flush() {
        Libc.fdatasync(fd);
    }

    /**
     * Frees {@code [offset, offset + length)} (reads back as zeros). False if the file system or
     * device cannot punch holes.
     */
    boolean discard(long offset, long length) {
        try {
            Libc.fallocate(fd, Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE, offset, length);
            return true;
        } catch (SyscallException e) {
            if (refused(e)) {
                return false;
            }
            throw e;
        }
    }

    /**
     * Makes {@code [offset, offset + length)} read back as zeros: ZERO_RANGE, or PUNCH_HOLE when
     * {@code unmap} allows freeing the space; where the file system refuses, by writing zeros.
     */
    void writeZeroes(long offset, long length, boolean unmap) {
        int mode = (unmap ? Libc.FALLOC_FL_PUNCH_HOLE : Libc.FALLOC_FL_ZERO_RANGE) | Libc.FALLOC_FL_KEEP_SIZE;
        try {
            Libc.fallocate(fd, mode, offset, length);
            return;
        } catch (SyscallException e) {
            if (!refused(e)) {
                throw e;
            }
        }
        MemorySegment zero = zeros();
        for (long done = 0; done < length; ) {
            long n = Libc.pwrite(fd, zero, Math.min(ZERO_CHUNK, length - done), offset + done);
            if (n == 0) {
                throw new SyscallException("pwrite(" + fd.what() + ") wrote nothing", Errno.EIO);
            }
            done += n;
        }
    }

    private synchronized MemorySegment zeros() {
        if (zeros == null) {
            zeros = arena.allocate(ZERO_CHUNK);
        }
        return zeros;
    }

    /** The file system or device lacks the fallocate mode, as opposed to failing at it. */
    private static boolean refused(SyscallException e) {
        return e.errno() == Errno.EOPNOTSUPP || e.errno() == Errno.EINVAL || e.errno() == Errno.ENODEV
                || e.errno() == Errno.ENOSYS;
    }

    /** Closes the descriptor, which releases the lock. */
    @Override
    public void close() {
        fd.close();
        synchronized (this) {
            if (arena.scope().isAlive()) {
                arena.close();
            }
        }
    }

    @Override
    public String toString() {
        return "DiskImage[" + path + (readOnly ? ", read-only" : "") + ", " + size + " bytes]";
    }
}
