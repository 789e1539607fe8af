package dev.kindling.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.boot.AddressRange;
import dev.kindling.boot.MicrovmLayout;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.Mapping;
import dev.kindling.sys.SyscallException;
import dev.kindling.testing.HostResources;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GuestMemorySnapshotTest {
    private static final long PAGE = Libc.pageSize();
    private static final long LOW = 0x100000, HIGH_AT = 0x10000000, HIGH = 0x80000;

    private static GuestMemory twoRegions() {
        return new GuestMemory(List.of(MemoryRegion.anonymous(0, LOW), MemoryRegion.anonymous(HIGH_AT, HIGH)));
    }

    /** Bytes of {@code fd} that are data, not holes. */
    private static long dataBytes(Fd fd) {
        long size = Libc.fileSize(fd);
        long total = 0;
        long at = 0;
        for (int i = 0; i < 100_000 && at < size; i++) {
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

    private static Fd open(Path p, int flags) {
        return Fd.adopt(Libc.open(p.toString(), flags | Libc.O_CLOEXEC, 0600), p.toString());
    }

    @Test
    void savedMemoryIsSparseAndMapsBackPrivately(@TempDir Path dir) throws Exception {
        HostResources before = HostResources.now();
        Path file = dir.resolve("mem");
        byte[] noise = new byte[(int) (3 * PAGE)];
        new Random(7).nextBytes(noise);
        try (GuestMemory m = twoRegions(); Fd out = open(file, Libc.O_RDWR | Libc.O_CREAT)) {
            m.write(0x3000, noise);               // three pages in the low region
            m.write64(HIGH_AT + 5 * PAGE + 8, 0x1122334455667788L); // one page in the high one
            m.write8(LOW - 1, (byte) 0x5a);       // the low region's last page
            long written = m.saveTo(out);
            assertThat(written).isEqualTo(5 * PAGE);
            assertThat(Files.size(file)).isEqualTo(LOW + HIGH);
            assertThat(dataBytes(out)).isEqualTo(5 * PAGE);
            assertThat(m.layout()).containsExactly(new AddressRange(0, LOW), new AddressRange(HIGH_AT, HIGH));

            try (Fd in = open(file, Libc.O_RDWR);
                    GuestMemory a = GuestMemory.mapPrivate(in, m.layout());
                    GuestMemory b = GuestMemory.mapPrivate(in, m.layout())) {
                assertThat(a.layout()).isEqualTo(m.layout());
                for (MemoryRegion r : m.regions()) {
                    assertThat(a.slice(r.guestAddress(), r.size()).mismatch(r.segment())).isEqualTo(-1);
                }
                long privateBefore = a.privateBytes();
                a.write(0x3000, new byte[(int) (3 * PAGE)]);
                a.write64(HIGH_AT + 64 * PAGE, -1L);
                assertThat(a.privateBytes() - privateBefore).isEqualTo(4 * PAGE);
                assertThat(a.read64(HIGH_AT + 64 * PAGE)).isEqualTo(-1L);
                assertThat(b.read(0x3000, noise.length)).isEqualTo(noise);
                assertThat(b.read64(HIGH_AT + 64 * PAGE)).isZero();
                assertThat(b.privateBytes()).isZero();
                byte[] fileNow = Files.readAllBytes(file);
                assertThat(java.util.Arrays.copyOfRange(fileNow, 0x3000, 0x3000 + noise.length)).isEqualTo(noise);
                assertThat(fileNow[(int) (LOW + 64 * PAGE)]).isZero();
                assertThat(b.read64(HIGH_AT + 5 * PAGE + 8)).isEqualTo(0x1122334455667788L);
            }
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aMemoryFileOfAnotherSizeIsRejected(@TempDir Path dir) throws Exception {
        HostResources before = HostResources.now();
        Path file = dir.resolve("mem");
        Files.write(file, new byte[(int) (LOW + HIGH - PAGE)]);
        try (GuestMemory m = twoRegions(); Fd in = open(file, Libc.O_RDONLY)) {
            assertThatThrownBy(() -> GuestMemory.mapPrivate(in, m.layout()))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("0x17f000").hasMessageContaining("0x180000");
        }
        try (Fd in = open(file, Libc.O_RDONLY)) {
            assertThatThrownBy(() -> MemoryRegion.privateCopy(in.dup(), PAGE, 0, LOW + HIGH - PAGE))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("too few");
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aSealedMemfdSnapshotCannotChangeAndClonesMapItPrivately() {
        HostResources before = HostResources.now();
        try (GuestMemory m = MicrovmLayout.anonymousMemory(0x400000)) {
            m.write64(0x2000, 42);
            try (Fd snap = m.saveToMemfd("snap")) {
                assertThat(Libc.seals(snap) & (Libc.F_SEAL_WRITE | Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW))
                        .isEqualTo(Libc.F_SEAL_WRITE | Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW);
                assertThatThrownBy(() -> Mapping.shared(snap, 0, PAGE)).isInstanceOf(SyscallException.class)
                        .hasMessageContaining("EPERM");
                assertThatThrownBy(() -> Libc.ftruncate(snap, 0)).isInstanceOf(SyscallException.class);
                try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
                    assertThatThrownBy(() -> Libc.pwrite(snap, arena.allocate(8), 8, 0)).isInstanceOf(SyscallException.class);
                }
                try (GuestMemory clone = MicrovmLayout.privateMemory(snap, 0x400000)) {
                    assertThat(clone.read64(0x2000)).isEqualTo(42);
                    clone.write64(0x2000, 43);
                    assertThat(clone.read64(0x2000)).isEqualTo(43);
                    try (GuestMemory other = MicrovmLayout.privateMemory(snap, 0x400000)) {
                        assertThat(other.read64(0x2000)).isEqualTo(42);
                    }
                }
            }
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void savingIsFastOnMostlyZeroAndOnFullMemory(@TempDir Path dir) {
        long size = 256L << 20;
        try (GuestMemory m = new GuestMemory(List.of(MemoryRegion.anonymous(0, size)));
                Fd out = open(dir.resolve("mem"), Libc.O_RDWR | Libc.O_CREAT)) {
            long t0 = System.nanoTime();
            assertThat(m.saveTo(out)).isZero();
            long zeroNanos = System.nanoTime() - t0;
            MemoryRegion r = m.regions().getFirst();
            for (long at = 0; at < size; at += PAGE) {
                r.segment().set(ValueLayout.JAVA_LONG, at, at + 1);
            }
            t0 = System.nanoTime();
            assertThat(m.saveTo(out)).isEqualTo(size);
            long fullNanos = System.nanoTime() - t0;
            System.out.printf("saveTo 256 MiB: untouched %d ms, full %d ms%n", zeroNanos / 1_000_000, fullNanos / 1_000_000);
            assertThat(fullNanos).isLessThan(10_000_000_000L); // far above page-cache speed; catches a per-byte loop
        }
    }
}
