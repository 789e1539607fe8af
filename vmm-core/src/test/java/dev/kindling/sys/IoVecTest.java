package dev.kindling.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Scatter-gather I/O: the reusable iovec array, readv/writev through a socket pair, preadv/pwritev on a file. */
class IoVecTest {
    @TempDir
    Path dir;

    @Test
    void arrayRecordsAddressAndSizeOfEachBuffer() {
        try (IoVec.Array iov = new IoVec.Array(4); Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocate(10);
            MemorySegment b = arena.allocate(300);
            iov.add(a);
            iov.add(b);
            assertThat(iov.count()).isEqualTo(2);
            assertThat(iov.capacity()).isEqualTo(4);
            assertThat(iov.byteCount()).isEqualTo(310);
            MemorySegment s = iov.segment();
            assertThat(s.byteSize()).isEqualTo(4 * IoVec.LAYOUT.byteSize());
            assertThat(s.get(ValueLayout.JAVA_LONG, 0)).isEqualTo(a.address());
            assertThat(s.get(ValueLayout.JAVA_LONG, 8)).isEqualTo(10);
            assertThat(s.get(ValueLayout.JAVA_LONG, 16)).isEqualTo(b.address());
            assertThat(s.get(ValueLayout.JAVA_LONG, 24)).isEqualTo(300);
            iov.clear();
            assertThat(iov.count()).isZero();
            assertThat(iov.byteCount()).isZero();
            iov.add(b);
            assertThat(s.get(ValueLayout.JAVA_LONG, 0)).isEqualTo(b.address());
        }
    }

    @Test
    void fullArrayHeapSegmentsAndBadCapacitiesAreRefused() {
        try (IoVec.Array iov = new IoVec.Array(1); Arena arena = Arena.ofConfined()) {
            assertThatThrownBy(() -> iov.add(MemorySegment.ofArray(new byte[4])))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("native segment");
            assertThat(iov.count()).isZero();
            iov.add(arena.allocate(1));
            assertThatThrownBy(() -> iov.add(arena.allocate(1)))
                    .isInstanceOf(IllegalStateException.class).hasMessage("iovec array is full: it holds 1 buffers");
            assertThat(iov.count()).isEqualTo(1);
        }
        assertThatThrownBy(() -> new IoVec.Array(0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new IoVec.Array(IoVec.MAX + 1)).hasMessageContaining("IOV_MAX");
    }

    @Test
    void writevGathersAndReadvScattersThroughASocketPair() {
        Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
        try (Fd a = pair[0]; Fd b = pair[1]; Arena arena = Arena.ofConfined();
                IoVec.Array out = new IoVec.Array(3); IoVec.Array in = new IoVec.Array(2)) {
            out.add(ascii(arena, "kin"));
            out.add(arena.allocate(0));
            out.add(ascii(arena, "dling!"));
            assertThat(Libc.writev(a, out.segment(), out.count())).isEqualTo(9);
            MemorySegment first = arena.allocate(5);
            MemorySegment second = arena.allocate(4);
            in.add(first);
            in.add(second);
            assertThat(Libc.readv(b, in.segment(), in.count())).isEqualTo(9);
            assertThat(text(first)).isEqualTo("kindl");
            assertThat(text(second)).isEqualTo("ing!");
        }
    }

    @Test
    void pwritevAndPreadvWorkAtAnOffsetWithoutMovingTheFilePosition() throws Exception {
        Path file = dir.resolve("image");
        Files.write(file, new byte[8192]);
        try (Fd fd = Fd.adopt(Libc.open(file.toString(), Libc.O_RDWR), file.toString()); Arena arena = Arena.ofConfined();
                IoVec.Array iov = new IoVec.Array(8)) {
            iov.add(ascii(arena, "sector"));
            iov.add(ascii(arena, "-"));
            iov.add(ascii(arena, "two"));
            assertThat(Libc.pwritev(fd, iov.segment(), iov.count(), 4096 + 7)).isEqualTo(10);
            byte[] onDisk = Files.readAllBytes(file);
            assertThat(new String(onDisk, 4096 + 7, 10, StandardCharsets.US_ASCII)).isEqualTo("sector-two");
            assertThat(onDisk[4096 + 6]).isZero();
            assertThat(onDisk[4096 + 17]).isZero();

            iov.clear();
            MemorySegment head = arena.allocate(4);
            MemorySegment tail = arena.allocate(6);
            iov.add(head);
            iov.add(tail);
            assertThat(Libc.preadv(fd, iov.segment(), iov.count(), 4096 + 7)).isEqualTo(10);
            assertThat(text(head)).isEqualTo("sect");
            assertThat(text(tail)).isEqualTo("or-two");
            // past the end only what is there
            assertThat(Libc.preadv(fd, iov.segment(), iov.count(), 8192 - 3)).isEqualTo(3);
            assertThat(Libc.preadv(fd, iov.segment(), iov.count(), 8192)).isZero();
            // positioned calls leave the file position alone
            MemorySegment one = arena.allocate(1);
            assertThat(Libc.read(fd, one, 1)).isEqualTo(1);
            assertThat(one.get(ValueLayout.JAVA_BYTE, 0)).isZero();
        }
    }

    @Test
    void aCountBeyondTheArrayIsRefusedBeforeTheCall() {
        try (Fd fd = Fd.adopt(Libc.memfdCreate("iov", 0), "memfd"); IoVec.Array iov = new IoVec.Array(2)) {
            assertThatThrownBy(() -> Libc.preadv(fd, iov.segment(), 3, 0))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("preadv: 3 iovecs");
            assertThatThrownBy(() -> Libc.writev(fd, iov.segment(), -1)).isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Test
    void aFailedCallNamesTheDescriptor() {
        try (EventFd e = EventFd.create(); Arena arena = Arena.ofConfined(); IoVec.Array iov = new IoVec.Array(1)) {
            iov.add(arena.allocate(8));
            // an eventfd has no position
            assertThatThrownBy(() -> Libc.preadv(e.fd(), iov.segment(), 1, 0))
                    .isInstanceOf(SyscallException.class).hasMessage("preadv(eventfd) failed: ESPIPE (29)");
        }
    }

    private static MemorySegment ascii(Arena arena, String s) {
        byte[] b = s.getBytes(StandardCharsets.US_ASCII);
        return arena.allocate(b.length).copyFrom(MemorySegment.ofArray(b));
    }

    private static String text(MemorySegment s) {
        return new String(s.toArray(ValueLayout.JAVA_BYTE), StandardCharsets.US_ASCII);
    }
}
