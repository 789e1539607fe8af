package dev.kindling.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.sys.Mapping;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

class GuestMemoryTest {
    private static GuestMemory twoRegions() {
        return new GuestMemory(List.of(
                MemoryRegion.anonymous(0, 0x10000),
                MemoryRegion.anonymous(0x100000, 0x10000)));
    }

    @Test
    void readsAndWritesLittleEndianValues() {
        try (GuestMemory m = twoRegions()) {
            m.write32(0x100, 0x11223344);
            assertThat(m.read8(0x100)).isEqualTo((byte) 0x44);
            assertThat(m.read16(0x102)).isEqualTo((short) 0x1122);
            m.write64(0x10fff8, -2L);
            assertThat(m.read64(0x10fff8)).isEqualTo(-2L);
            m.write(0x200, new byte[] {1, 2, 3});
            assertThat(m.read(0x200, 3)).containsExactly(1, 2, 3);
            assertThat(m.size()).isEqualTo(0x20000);
        }
    }

    @Test
    void accessesOutsideRamFailCleanly() {
        try (GuestMemory m = twoRegions()) {
            assertThatThrownBy(() -> m.read32(0x10000)).isInstanceOf(GuestMemoryException.class)
                    .hasMessageContaining("0x10000").hasMessageContaining("not guest RAM");
            assertThatThrownBy(() -> m.read32(0xfffe)).isInstanceOf(GuestMemoryException.class)
                    .hasMessageContaining("leaves");
            assertThatThrownBy(() -> m.slice(0x100000, Long.MAX_VALUE)).isInstanceOf(GuestMemoryException.class);
            assertThatThrownBy(() -> m.slice(-8, 4)).isInstanceOf(GuestMemoryException.class);
            assertThatThrownBy(() -> m.slice(0x100, -1)).isInstanceOf(GuestMemoryException.class);
            assertThatThrownBy(() -> m.write(0xffff0000L, new byte[1])).isInstanceOf(GuestMemoryException.class);
            assertThat(m.isValid(0xfff0, 0x10)).isTrue();
            assertThat(m.isValid(0xfff0, 0x11)).isFalse();
            assertThat(m.isValid(0x100000, Long.MAX_VALUE)).isFalse();
        }
    }

    @Test
    void overlappingRegionsAreRejected() {
        MemoryRegion a = MemoryRegion.anonymous(0, 0x2000);
        MemoryRegion b = MemoryRegion.anonymous(0x1000, 0x2000);
        try (a; b) {
            assertThatThrownBy(() -> new GuestMemory(List.of(a, b)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("overlap");
        }
    }

    @Test
    void badRegionPlacementIsRejected() {
        assertThatThrownBy(() -> MemoryRegion.anonymous(0x123, 0x1000)).hasMessageContaining("not page-aligned");
        assertThatThrownBy(() -> MemoryRegion.anonymous(0, 0x1001)).hasMessageContaining("page size");
        assertThatThrownBy(() -> MemoryRegion.anonymous(Long.MAX_VALUE & ~0xfffL, 0x2000)).hasMessageContaining("overflows");
    }

    @Test
    void memfdRegionIsSharedWithAnotherMapping() {
        try (MemoryRegion r = MemoryRegion.memfd("guest-ram", 0x100000, 0x4000);
                GuestMemory m = new GuestMemory(List.of(r));
                Mapping other = Mapping.shared(r.fd().orElseThrow(), 0, 0x4000)) {
            m.write32(0x101000, 0xcafe);
            assertThat(other.segment().get(ValueLayout.JAVA_INT, 0x1000)).isEqualTo(0xcafe);
        }
    }

    @Test
    void accessesAfterCloseFailWithAClearException() {
        GuestMemory m = twoRegions();
        MemorySegment early = m.slice(0x100000, 0x100);
        early.set(ValueLayout.JAVA_INT, 0, 7);
        m.close();
        assertThat(m.isOpen()).isFalse();
        assertThatThrownBy(() -> m.read32(0x100)).isInstanceOf(GuestMemoryClosedException.class)
                .hasMessageContaining("guest memory is closed").hasMessageContaining("0x100");
        assertThatThrownBy(() -> m.write64(0x100000, 1)).isInstanceOf(GuestMemoryClosedException.class);
        assertThatThrownBy(() -> m.loadAcquire16(0x100)).isInstanceOf(GuestMemoryClosedException.class);
        assertThatThrownBy(() -> m.storeRelease32(0x100, 1)).isInstanceOf(GuestMemoryClosedException.class);
        assertThatThrownBy(() -> m.write(0x100, new byte[8])).isInstanceOf(GuestMemoryClosedException.class);
        assertThatThrownBy(() -> m.slice(0x100, 4)).isInstanceOf(GuestMemoryClosedException.class);
        // a slice taken before close is refused by its arena, not read from unmapped memory
        assertThatThrownBy(() -> early.get(ValueLayout.JAVA_INT, 0)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> early.fill((byte) 1)).isInstanceOf(IllegalStateException.class);
        m.close(); // a second close does nothing
    }

    @Test
    void closingWhileAnotherThreadHammersTheMemoryNeverCrashes() throws Exception {
        for (int round = 0; round < 20; round++) {
            GuestMemory m = twoRegions();
            MemorySegment early = m.slice(0x100000, 0x1000);
            AtomicLong accesses = new AtomicLong();
            AtomicReference<Throwable> ended = new AtomicReference<>();
            CountDownLatch started = new CountDownLatch(1);
            Thread hammer = new Thread(() -> {
                try {
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                    byte[] buf = new byte[64];
                    for (long i = 0; System.nanoTime() < deadline; i++) {
                        long gpa = (i * 64) & 0xffc0;
                        m.write32(gpa, (int) i);
                        m.read64(gpa);
                        m.read(0x100000 + gpa, buf);
                        m.storeRelease16(gpa + 8, (short) i);
                        m.slice(gpa, 64).fill((byte) i);
                        early.set(ValueLayout.JAVA_LONG, gpa & 0xff8, i);
                        if (accesses.incrementAndGet() == 1000) {
                            started.countDown();
                        }
                    }
                } catch (Throwable t) {
                    ended.set(t);
                }
            }, "guest-memory-hammer");
            hammer.start();
            assertThat(started.await(10, TimeUnit.SECONDS)).as("the hammer got going").isTrue();
            m.close();
            hammer.join(10_000);
            assertThat(hammer.isAlive()).isFalse();
            assertThat(ended.get()).as("the hammer's accesses after close").isInstanceOf(IllegalStateException.class);
            assertThat(accesses.get()).isGreaterThanOrEqualTo(1000);
        }
    }

    @Test
    void aMappingIsUnmappedOnceAndRefusesAccessAfterwards() {
        Mapping map = Mapping.anonymous(0x2000);
        MemorySegment s = map.segment();
        s.set(ValueLayout.JAVA_LONG, 0x1000, 42L);
        assertThat(map.isOpen()).isTrue();
        map.close();
        map.close();
        assertThat(map.isOpen()).isFalse();
        assertThat(map.length()).isEqualTo(0x2000);
        assertThatThrownBy(() -> s.get(ValueLayout.JAVA_LONG, 0x1000)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void closeLeavesNoZeroPlaceholderMappedOnceNoThreadIsInsideAnAccess() throws Exception {
        try (MemoryRegion r = MemoryRegion.memfd("placeholder", 0, 0x4000)) {
            String start = Long.toHexString(r.segment().address()) + "-";
            assertThat(mapsLinesStartingWith(start)).as("the memfd mapping").hasSize(1).allMatch(l -> l.contains("memfd:placeholder"));
            r.close();
            assertThat(mapsLinesStartingWith(start)).as("what is mapped there after close").isEmpty();
        }
    }

    private static List<String> mapsLinesStartingWith(String prefix) throws IOException {
        try (Stream<String> lines = Files.lines(Path.of("/proc/self/maps"))) {
            return lines.filter(l -> l.startsWith(prefix)).toList();
        }
    }
}
