package dev.kindling.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.testing.BoundedProcess;
import dev.kindling.testing.Require;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a disk image needs from the kernel: open with a mode, fsync/fdatasync, fallocate, flock, block devices. */
class FileCallsTest {
    private static final int SIZE = 64 * 1024;
    private static final Duration LIMIT = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    @Test
    void openCreatesExclusivelyWithTheMode() throws Exception {
        Path file = dir.resolve("new");
        int flags = Libc.O_RDWR | Libc.O_CREAT | Libc.O_EXCL;
        try (Fd fd = Fd.adopt(Libc.open(file.toString(), flags, 0600), file.toString())) {
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(file))).isEqualTo("rw-------");
            assertThat(openFlags(fd) & Libc.O_CLOEXEC).as("O_CLOEXEC always added").isNotZero();
        }
        assertThatThrownBy(() -> Libc.open(file.toString(), flags, 0600))
                .isInstanceOf(SyscallException.class).hasMessage("open(" + file + ") failed: EEXIST (17)");
        try (Fd ro = Fd.adopt(Libc.open(file.toString(), Libc.O_RDONLY, 0), file.toString()); Arena arena = Arena.ofConfined()) {
            assertThatThrownBy(() -> Libc.pwrite(ro, arena.allocate(1), 1, 0))
                    .isInstanceOf(SyscallException.class).hasMessageContaining("EBADF");
        }
        try (Fd wo = Fd.adopt(Libc.open(file.toString(), Libc.O_WRONLY, 0), file.toString()); Arena arena = Arena.ofConfined()) {
            assertThat(Libc.pwrite(wo, arena.allocate(3), 3, 0)).isEqualTo(3);
        }
        assertThat(Files.size(file)).isEqualTo(3);
    }

    @Test
    void fsyncAndFdatasyncReachTheKernel() throws Exception {
        try (Fd fd = image(); Arena arena = Arena.ofConfined()) {
            Libc.pwrite(fd, arena.allocate(512).fill((byte) 1), 512, 0);
            Libc.fdatasync(fd);
            Libc.fsync(fd);
        }
        // a pipe cannot be synced: the kernel saw the call and refused it
        Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
        try (Fd a = pair[0]; Fd b = pair[1]) {
            assertThatThrownBy(() -> Libc.fdatasync(a)).isInstanceOf(SyscallException.class)
                    .hasMessage("fdatasync(socketpair[0]) failed: EINVAL (22)");
            assertThatThrownBy(() -> Libc.fsync(b)).hasMessage("fsync(socketpair[1]) failed: EINVAL (22)");
        }
    }

    @Test
    void punchHoleAndZeroRangeReadBackAsZerosAndKeepTheSize() throws Exception {
        try (Fd fd = image(); Arena arena = Arena.ofConfined()) {
            long blocksBefore = blocks(fd, arena);
            fallocateOrSkip(fd, Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE, 8192, 8192);
            fallocateOrSkip(fd, Libc.FALLOC_FL_ZERO_RANGE | Libc.FALLOC_FL_KEEP_SIZE, 32768 + 100, 4000);
            assertThat(Libc.fileSize(fd)).isEqualTo(SIZE);
            assertThat(blocks(fd, arena)).as("512-byte blocks after a 8 KiB hole").isLessThan(blocksBefore);
            MemorySegment back = arena.allocate(SIZE);
            assertThat(Libc.pread(fd, back, SIZE, 0)).isEqualTo(SIZE);
            byte[] b = back.toArray(ValueLayout.JAVA_BYTE);
            for (int i = 0; i < SIZE; i++) {
                boolean zeroed = i >= 8192 && i < 16384 || i >= 32768 + 100 && i < 32768 + 4100;
                if (b[i] != (zeroed ? 0 : (byte) 0xAB)) {
                    throw new AssertionError("byte " + i + " is " + b[i] + (zeroed ? ", not zeroed" : ", not kept"));
                }
            }
        }
    }

    @Test
    void fallocateWithoutFlagsGrowsTheFile() throws Exception {
        try (Fd fd = image()) {
            Libc.fallocate(fd, 0, SIZE, 4096);
            assertThat(Libc.fileSize(fd)).isEqualTo(SIZE + 4096);
            assertThatThrownBy(() -> Libc.fallocate(fd, 0, 0, -1)).isInstanceOf(SyscallException.class)
                    .hasMessageStartingWith("fallocate(").hasMessageEndingWith("EINVAL (22)");
        }
    }

    @Test
    void aSecondOpenFileCannotTakeAnExclusiveLockThatIsHeld() throws Exception {
        try (Fd first = image(); Fd second = reopen(); Fd third = reopen()) {
            assertThat(Libc.flock(first, Libc.LOCK_EX | Libc.LOCK_NB)).isTrue();
            assertThat(Libc.flock(second, Libc.LOCK_EX | Libc.LOCK_NB)).isFalse();
            assertThat(Libc.flock(second, Libc.LOCK_SH | Libc.LOCK_NB)).isFalse();
            // a blocking request waits for the holder to let go
            CompletableFuture<Boolean> waiting = CompletableFuture.supplyAsync(() -> Libc.flock(third, Libc.LOCK_EX));
            assertThat(Libc.flock(first, Libc.LOCK_UN)).isTrue();
            assertThat(waiting.get(10, TimeUnit.SECONDS)).isTrue();
            assertThat(Libc.flock(first, Libc.LOCK_SH | Libc.LOCK_NB)).isFalse();
            Libc.flock(third, Libc.LOCK_UN);
            // shared locks share
            assertThat(Libc.flock(first, Libc.LOCK_SH | Libc.LOCK_NB)).isTrue();
            assertThat(Libc.flock(second, Libc.LOCK_SH | Libc.LOCK_NB)).isTrue();
            assertThat(Libc.flock(third, Libc.LOCK_EX | Libc.LOCK_NB)).isFalse();
        }
        // closing the last descriptor of an open file releases its lock
        try (Fd again = reopen()) {
            assertThat(Libc.flock(again, Libc.LOCK_EX | Libc.LOCK_NB)).isTrue();
        }
    }

    @Test
    void aRegularFileIsNoBlockDevice() throws Exception {
        try (Fd fd = image(); Fd memfd = Fd.adopt(Libc.memfdCreate("x", 0), "memfd")) {
            assertThat(Libc.isBlockDevice(fd)).isFalse();
            assertThat(Libc.isBlockDevice(memfd)).isFalse();
            assertThatThrownBy(() -> Libc.blockDeviceSize(fd)).hasMessage("ioctl(BLKGETSIZE64) failed: ENOTTY (25)");
        }
    }

    @Test
    void aLoopDeviceIsABlockDeviceWhoseSizeBothWaysAgree() throws Exception {
        Require.that(Require.onPath("losetup") || Files.isExecutable(Path.of("/usr/sbin/losetup")), "losetup is not installed");
        Path backing = dir.resolve("loop-backing");
        Files.write(backing, new byte[3 * 1024 * 1024]);
        String losetup = Files.isExecutable(Path.of("/usr/sbin/losetup")) ? "/usr/sbin/losetup" : "losetup";
        BoundedProcess.Result attach = BoundedProcess.run(LIMIT, losetup, "--find", "--show", backing.toString());
        if (!attach.succeeded()) {
            Require.unavailable("cannot attach a loop device (needs root and /dev/loop*): " + attach.output().strip());
        }
        String device = attach.output().strip();
        try (Fd fd = Fd.adopt(Libc.open(device, Libc.O_RDONLY, 0), device)) {
            assertThat(Libc.isBlockDevice(fd)).isTrue();
            assertThat(Libc.blockDeviceSize(fd)).isEqualTo(3 * 1024 * 1024);
            assertThat(Libc.fileSize(fd)).isEqualTo(3 * 1024 * 1024);
        } finally {
            BoundedProcess.Result detach = BoundedProcess.run(LIMIT, losetup, "--detach", device);
            assertThat(detach.succeeded()).as(detach.describe() + ": " + detach.output()).isTrue();
        }
    }

    /** A {@link #SIZE}-byte file of 0xAB bytes, open for reading and writing. */
    private Fd image() throws Exception {
        byte[] content = new byte[SIZE];
        Arrays.fill(content, (byte) 0xAB);
        Path file = Files.write(dir.resolve("image"), content);
        return Fd.adopt(Libc.open(file.toString(), Libc.O_RDWR, 0), file.toString());
    }

    private static int openFlags(Fd fd) throws Exception {
        return Files.readAllLines(Path.of("/proc/self/fdinfo/" + fd.value())).stream().filter(l -> l.startsWith("flags:"))
                .mapToInt(l -> Integer.parseInt(l.substring(6).trim(), 8)).findFirst().orElseThrow();
    }

    private Fd reopen() {
        Path file = dir.resolve("image");
        return Fd.adopt(Libc.open(file.toString(), Libc.O_RDWR, 0), file.toString());
    }

    private static long blocks(Fd fd, Arena arena) {
        MemorySegment stat = arena.allocate(Libc.STAT_LAYOUT);
        Libc.fstat(fd, stat);
        return stat.get(ValueLayout.JAVA_LONG, Libc.STAT_LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("st_blocks")));
    }

    private void fallocateOrSkip(Fd fd, int mode, long offset, long length) throws Exception {
        try {
            Libc.fallocate(fd, mode, offset, length);
        } catch (SyscallException e) {
            if (e.errno() == Errno.EOPNOTSUPP) {
                String fs = Files.getFileStore(dir).type();
                System.out.println("skipping: " + fs + " at " + dir + " refuses fallocate mode " + mode + ": " + e.getMessage());
                Require.unavailable(fs + " refuses fallocate mode " + mode + " (" + e.getMessage() + ")");
            }
            throw e;
        }
    }
}
