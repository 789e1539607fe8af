package dev.kindling.sys;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * An owned mmap: {@link #segment()} is bounds-checked to the mapped length, and {@link #close()}
 * unmaps exactly once. Accessing the segment after close is the caller's bug; owners close their
 * mappings only once every user of the segment has stopped.
 */
@SuppressWarnings("restricted") // sizes the address mmap returned
public final class Mapping implements AutoCloseable {
    private final MemorySegment segment;
    private final AtomicBoolean closed = new AtomicBoolean();

    private Mapping(MemorySegment segment) {
        this.segment = segment;
    }

    /** Anonymous private memory, not reserved up front (pages come on first touch). */
    public static Mapping anonymous(long length) {
        checkLength(length);
        MemorySegment p = Libc.mmap(MemorySegment.NULL, length, Libc.PROT_READ | Libc.PROT_WRITE,
                Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0);
        return new Mapping(p.reinterpret(length));
    }

    /** Maps {@code length} bytes of {@code fd} at {@code offset}. */
    public static Mapping of(Fd fd, long offset, long length, int prot, int flags) {
        checkLength(length);
        MemorySegment p = Libc.mmap(MemorySegment.NULL, length, prot, flags, fd.value(), offset);
        return new Mapping(p.reinterpret(length));
    }

    /** A shared read-write mapping of {@code fd}, as used for memfd-backed guest memory. */
    public static Mapping shared(Fd fd, long offset, long length) {
        return of(fd, offset, length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED);
    }

    private static void checkLength(long length) {
        if (length <= 0) {
            throw new IllegalArgumentException("mapping length must be positive, got " + length);
        }
    }

    public MemorySegment segment() {
        if (closed.get()) {
            throw new IllegalStateException("mapping is closed");
        }
        return segment;
    }

    public long length() {
        return segment.byteSize();
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            Libc.munmap(segment, segment.byteSize());
        }
    }
}
