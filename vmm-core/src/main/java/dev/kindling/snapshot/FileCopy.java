package dev.kindling.snapshot;

import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.SyscallException;
import java.nio.file.Path;

/**
 * Copies a file (a disk image for a clone) cheaply: a reflink where the file system shares extents
 * (btrfs, XFS), else a copy of the data ranges only, so holes stay holes.
 */
public final class FileCopy {
    /** How a copy was made. */
    public enum Method {
        /** FICLONE: the copy shares the source's blocks until either is written. */
        REFLINK,
        /** SEEK_DATA/SEEK_HOLE and copy_file_range: the data copied, holes kept. */
        SPARSE
    }

    private static final int EOPNOTSUPP = 95, EXDEV = 18, EINVAL = 22, ENOTTY = 25, EBADF = 9, ENOSYS = 38;
    private static final long CHUNK = 1L << 30;

    private FileCopy() {
    }

    /** Copies {@code from} to {@code to}, which is created or replaced (mode 0600 when created). */
    public static Method copy(Path from, Path to) {
        try (Fd in = Fd.adopt(Libc.open(from.toString(), Libc.O_RDONLY | Libc.O_CLOEXEC), from.toString());
                Fd out = Fd.adopt(Libc.open(to.toString(), Libc.O_WRONLY | Libc.O_CREAT | Libc.O_CLOEXEC, 0600), to.toString())) {
            Libc.ftruncate(out, 0);
            try {
                Libc.ioctl(out, Libc.FICLONE, in.value());
                return Method.REFLINK;
            } catch (SyscallException e) {
                if (!noReflink(e.errno())) {
                    throw e;
                }
            }
            sparseCopy(in, out);
            return Method.SPARSE;
        }
    }

    private static boolean noReflink(int errno) {
        return errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL || errno == ENOTTY || errno == EBADF || errno == ENOSYS;
    }

    private static void sparseCopy(Fd in, Fd out) {
        long size = Libc.fileSize(in);
        Libc.ftruncate(out, size);
        long at = 0;
        while (at < size) {
            long data = Libc.lseek(in, at, Libc.SEEK_DATA);
            if (data < 0 || data >= size) {
                break;
            }
            long hole = Libc.lseek(in, data, Libc.SEEK_HOLE);
            if (hole <= data || hole > size) {
                hole = size;
            }
            long pos = data;
            while (pos < hole) {
                long n = Libc.copyFileRange(in, pos, out, pos, Math.min(CHUNK, hole - pos));
                if (n == 0) {
                    throw new IllegalStateException("copy_file_range(" + in.what() + ") copied nothing at " + pos
                            + " of " + size + " bytes (the file shrank?)");
                }
                pos += n;
            }
            at = hole;
        }
    }
}
