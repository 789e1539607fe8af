package dev.kindling.snapshot;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.testing.HostResources;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FileCopyTest {
    private static final int MIB = 1 << 20;

    private static long dataBytes(Path p) {
        try (Fd fd = Fd.adopt(Libc.open(p.toString(), Libc.O_RDONLY | Libc.O_CLOEXEC), p.toString())) {
            long size = Libc.fileSize(fd);
            long total = 0;
            long at = 0;
            for (int i = 0; i < 10_000 && at < size; i++) {
                long data = Libc.lseek(fd, at, Libc.SEEK_DATA);
                if (data < 0) {
                    break;
                }
                long hole = Libc.lseek(fd, data, Libc.SEEK_HOLE);
                total += hole - data;
                at = hole;
            }
            return total;
        }
    }

    @Test
    void copiesContentAndKeepsHoles(@TempDir Path dir) throws Exception {
        Path from = dir.resolve("disk.img");
        byte[] a = new byte[MIB];
        byte[] b = new byte[MIB];
        new Random(1).nextBytes(a);
        new Random(2).nextBytes(b);
        try (RandomAccessFile f = new RandomAccessFile(from.toFile(), "rw")) {
            f.setLength(64L * MIB);
            f.seek(4L * MIB);
            f.write(a);
            f.seek(40L * MIB);
            f.write(b);
        }
        Path to = dir.resolve("clone.img");
        Files.write(to, new byte[3 * MIB]); // replaced, not kept
        FileCopy.copy(from, dir.resolve("warm-up")); // binds the native calls, which maps code
        HostResources before = HostResources.now();
        FileCopy.Method how = FileCopy.copy(from, to);
        HostResources.now().assertNothingLeftSince(before);
        System.out.println("FileCopy on " + Files.getFileStore(dir).type() + ": " + how);
        assertThat(Files.mismatch(from, to)).isEqualTo(-1);
        assertThat(Files.size(to)).isEqualTo(64L * MIB);
        assertThat(dataBytes(to)).isLessThanOrEqualTo(4L * MIB).isGreaterThanOrEqualTo(2L * MIB);
        // the copy is its own file
        try (RandomAccessFile f = new RandomAccessFile(to.toFile(), "rw")) {
            f.seek(4L * MIB);
            f.write(new byte[16]);
        }
        assertThat(Files.mismatch(from, to)).isEqualTo(4L * MIB);
    }

    @Test
    void copiesAnEmptyFile(@TempDir Path dir) throws Exception {
        Path from = Files.createFile(dir.resolve("empty"));
        Path to = dir.resolve("copy");
        FileCopy.copy(from, to);
        assertThat(Files.size(to)).isZero();
    }
}
