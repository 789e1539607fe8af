package dev.kindling.sys;

import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * An owned mmap: {@link #segment()} is bounds-checked to the mapped length and lives in a shared
 * arena of its own. An access through the segment (or any slice of it) after {@link #close()} throws
 * {@link IllegalStateException} in whatever thread makes it, never touches unmapped memory (see
 * {@link #close()} for how that holds on a JDK whose arena close does not wait out every access).
 * Raw addresses handed to the kernel (an iovec for preadv) are not tracked by the arena: their owners
 * must have stopped before close, which {@code Machine} ensures by unmapping only after every device
 * thread has ended.
 */
@SuppressWarnings("restricted") // sizes the address mmap returned and attaches it to the arena that guards it
public final class Mapping implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(Mapping.class.getName());
    /** The frames of FFM's checked accesses: a thread with one on its stack may be inside an access. */
    private static final String SCOPED_ACCESS_CLASS = "jdk.internal.misc.ScopedMemoryAccess";
    /** How long close waits for threads to leave an access before it keeps the zero placeholder instead. */
    private static final long LATE_ACCESS_WAIT_NANOS = TimeUnit.SECONDS.toNanos(5);

    private final Arena arena;
    private final MemorySegment segment;
    private boolean closed;

    private Mapping(MemorySegment mapped, long length) {
        Arena a = Arena.ofShared();
        this.arena = a;
        this.segment = mapped.reinterpret(length, a, null);
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

    /**
     * A private read-write (copy-on-write) mapping of {@code fd}: pages are read from the file on
     * first touch, writes go to private copies and never reach the file.
     */
    public static Mapping privateOf(Fd fd, long offset, long length) {
        return of(fd, offset, length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_NORESERVE);
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
     *
     * <p>Closing the arena makes every access that starts afterwards throw. An access already past its
     * check is another matter: on JDK 25 (JDK-8364167) the close's handshake only asks such a thread
     * to throw at a later safepoint, which may come after one more access, after close has returned.
     * So the range is never left unmapped while such a thread may run: in one step (mmap MAP_FIXED)
     * fresh zero pages replace the mapping, which frees the memory and drops the file (a memfd's pages
     * go with its last mapping and descriptor), so a late access reads zeros or writes to nothing; the
     * placeholder is unmapped once every thread that was inside an FFM access has been seen out of it,
     * after which none can reach this memory again.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        try {
            arena.close();
        } catch (IllegalStateException e) {
            throw new IllegalStateException("mapping of 0x" + Long.toHexString(length())
                    + " bytes is in use by a native call and stays mapped", e);
        }
        closed = true;
        MemorySegment at = MemorySegment.ofAddress(segment.address());
        long length = segment.byteSize();
        Libc.mmap(at, length, Libc.PROT_READ | Libc.PROT_WRITE,
                Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE | Libc.MAP_FIXED, -1, 0);
        if (awaitAccessesInFlight()) {
            Libc.munmap(at, length);
        } else {
            LOG.log(Level.WARNING, "a thread stayed inside a memory access for {0} s after the close of a mapping of 0x{1}"
                    + " bytes; its zero placeholder stays mapped", TimeUnit.NANOSECONDS.toSeconds(LATE_ACCESS_WAIT_NANOS),
                    Long.toHexString(length));
        }
    }

    /**
     * Waits until every other thread that is inside an FFM memory access now has been seen outside
     * one (each look is a handshake with that thread, so it is between instructions): a thread that
     * has left the access it was in when the arena closed can reach the memory only through a new
     * access, which the closed arena refuses. False if one is still inside after the wait. Virtual
     * threads are not listed by the JDK; a late access of theirs meets the placeholder only while
     * this wait lasts.
     */
    private static boolean awaitAccessesInFlight() {
        Thread self = Thread.currentThread();
        Set<Thread> inside = new HashSet<>();
        for (Map.Entry<Thread, StackTraceElement[]> e : Thread.getAllStackTraces().entrySet()) {
            if (e.getKey() != self && inScopedAccess(e.getValue())) {
                inside.add(e.getKey());
            }
        }
        long deadline = System.nanoTime() + LATE_ACCESS_WAIT_NANOS;
        while (!inside.isEmpty()) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            Thread.yield();
            inside.removeIf(t -> !t.isAlive() || !inScopedAccess(t.getStackTrace()));
        }
        return true;
    }

    private static boolean inScopedAccess(StackTraceElement[] stack) {
        for (StackTraceElement f : stack) {
            if (f.getClassName().equals(SCOPED_ACCESS_CLASS)) {
                return true;
            }
        }
        return false;
    }
}
