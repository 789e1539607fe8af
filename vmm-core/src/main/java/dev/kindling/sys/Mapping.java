package dev.kindling.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * An owned mmap: {@link #segment()} is bounds-checked to the mapped length and lives in a shared
 * arena of its own, whose close unmaps. An access through the segment (or any slice of it) after
 * {@link #close()} throws {@link IllegalStateException} in whatever thread makes it, never touches
 * unmapped memory: FFM's shared-arena close waits out accesses in flight. Raw addresses handed to
 * the kernel (an iovec for preadv) are not tracked by the arena: their owners must have stopped before
 * close, which {@code Machine} ensures by unmapping only after every device thread has ended.
 */
@SuppressWarnings("restricted") // sizes the address mmap returned and attaches it to the arena that unmaps it
public final class Mapping implements AutoCloseable {
    private final Arena arena;
    private final MemorySegment segment;
    private boolean closed;

    private Mapping(MemorySegment mapped, long length) {
        Arena a = Arena.ofShared();
        this.arena = a;
        this.segment = mapped.reinterpret(length, a, s -> Libc.munmap(s, length));
    }

    /** Anonymous private memory, not reserved up front (pages come on first touch). */
    public static Mapping anonymous(long length) {
        checkLength(length);
        MemorySegment p = Libc.mmap(MemorySegment.NULL, length, Libc.PROT_READ | Libc.PROT_WRITE,
                Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0);
        return adopt(p, length);
    }

    /** Maps {@code length} bytes of {@code fd} at {@code offset}. */
    public static Mapping of(Fd fd, long offset, long length, int prot, int flags) {
        checkLength(length);
        MemorySegment p = Libc.mmap(MemorySegment.NULL, length, prot, flags, fd.value(), offset);
        return adopt(p, length);
    }

    /** A shared read-write mapping of {@code fd}, as used for memfd-backed guest memory. */
    public static Mapping shared(Fd fd, long offset, long length) {
        return of(fd, offset, length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED);
    }

    private static Mapping adopt(MemorySegment p, long length) {
        try {
            return new Mapping(p, length);
        } catch (RuntimeException | Error e) {
            Libc.munmap(p, length);
            throw e;
        }
    }

    private static void checkLength(long length) {
        if (length <= 0) {
            throw new IllegalArgumentException("mapping length must be positive, got " + length);
        }
    }

    /** The mapped memory; accesses after {@link #close()} throw {@link IllegalStateException}. */
    public MemorySegment segment() {
        return segment;
    }

    public long length() {
        return segment.byteSize();
    }

    /** True until {@link #close()} has unmapped the memory. */
    public boolean isOpen() {
        return segment.scope().isAlive();
    }

    /**
     * Unmaps, once. Throws {@link IllegalStateException} and leaves the memory mapped (a later close
     * may succeed) while a native call holds the segment: FFM does not let a shared arena close then.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        try {
            arena.close();
        } catch (IllegalStateException e) {
            if (isOpen()) {
                throw new IllegalStateException("mapping of 0x" + Long.toHexString(length())
                        + " bytes is in use by a native call and stays mapped", e);
            }
            throw e;
        } finally {
            closed = !isOpen();
        }
    }
}
