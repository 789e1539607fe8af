package dev.kindling.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;

/** {@code struct iovec}: one buffer of a scatter-gather call (readv, preadv, sendmsg...). */
public final class IoVec {
    /** {@code struct iovec}. */
    public static final StructLayout LAYOUT = MemoryLayout.structLayout(
            ADDRESS.withName("iov_base"), JAVA_LONG.withName("iov_len"));
    /** {@code IOV_MAX}: the most buffers one call takes (more fail with EINVAL). */
    public static final int MAX = 1024;

    private static final long BASE = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("iov_base"));
    private static final long LEN = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("iov_len"));

    private IoVec() {}

    /** Points the {@code index}th iovec of {@code iov} at {@code buf} (a native segment). */
    public static void set(MemorySegment iov, int index, MemorySegment buf) {
        if (!buf.isNative()) {
            throw new IllegalArgumentException("an iovec needs a native segment, not " + buf);
        }
        long at = index * LAYOUT.byteSize();
        iov.set(ADDRESS, at + BASE, buf);
        iov.set(JAVA_LONG, at + LEN, buf.byteSize());
    }

    /**
     * An iovec array allocated once and refilled for every request, so that a device I/O thread
     * builds the buffer list of a request without allocating. It holds raw addresses: the segments
     * added must stay alive until the call that uses them has returned. Used by one thread at a time.
     */
    public static final class Array implements AutoCloseable {
        private final Arena arena = Arena.ofShared();
        private final MemorySegment iov;
        private final int capacity;
        private int count;
        private long bytes;

        /** An empty array of up to {@code capacity} buffers (1 to {@link IoVec#MAX}). */
        public Array(int capacity) {
            if (capacity < 1 || capacity > MAX) {
                throw new IllegalArgumentException("an iovec array holds 1 to " + MAX + " (IOV_MAX) buffers, not " + capacity);
            }
            this.capacity = capacity;
            this.iov = arena.allocate(LAYOUT, capacity);
        }

        /** Appends {@code buf}: its address and byte size. */
        public void add(MemorySegment buf) {
            if (count == capacity) {
                throw new IllegalStateException("iovec array is full: it holds " + capacity + " buffers");
            }
            set(iov, count, buf);
            count++;
            bytes += buf.byteSize();
        }

        /** Empties the array for the next request. */
        public void clear() {
            count = 0;
            bytes = 0;
        }

        /** The buffers added since the last {@link #clear()}. */
        public int count() {
            return count;
        }

        public int capacity() {
            return capacity;
        }

        /** The sum of the sizes of the buffers added: what a call moves when it moves everything. */
        public long byteCount() {
            return bytes;
        }

        /** The whole array, to pass with {@link #count()} (its first {@code count()} entries are set). */
        public MemorySegment segment() {
            return iov;
        }

        @Override
        public void close() {
            if (arena.scope().isAlive()) {
                arena.close();
            }
        }
    }
}
