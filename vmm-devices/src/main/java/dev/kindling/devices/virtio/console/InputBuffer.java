package dev.kindling.devices.virtio.console;

/**
 * Host input waiting for the guest's receive buffers: a bounded byte ring. Producers are the reader
 * thread ({@link #put}, which waits for room) and callers of {@link #offer} (which never waits); the
 * consumer is the receive thread ({@link #take}, which never waits either).
 */
final class InputBuffer {
    private final byte[] ring;
    // guarded by this
    private int head;
    private int size;
    private boolean closed;

    InputBuffer(int capacity) {
        this.ring = new byte[capacity];
    }

    /** All of {@code bytes}, or nothing when there is no room for all (or the buffer is closed). */
    synchronized boolean offer(byte[] bytes) {
        if (closed || bytes.length > ring.length - size) {
            return false;
        }
        push(bytes, 0, bytes.length);
        return true;
    }

    /** Adds {@code len} bytes, waiting for room as needed; false if closed (or interrupted) first. */
    synchronized boolean put(byte[] b, int off, int len) {
        while (len > 0) {
            while (!closed && size == ring.length) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            }
            if (closed) {
                return false;
            }
            int n = Math.min(len, ring.length - size);
            push(b, off, n);
            off += n;
            len -= n;
        }
        return true;
    }

    private void push(byte[] b, int off, int len) {
        int tail = (head + size) % ring.length;
        int first = Math.min(len, ring.length - tail);
        System.arraycopy(b, off, ring, tail, first);
        System.arraycopy(b, off + first, ring, 0, len - first);
        size += len;
    }

    /** Moves up to {@code max} bytes into {@code dst}; returns how many (0 if empty). */
    synchronized int take(byte[] dst, int max) {
        int n = Math.min(max, size);
        int first = Math.min(n, ring.length - head);
        System.arraycopy(ring, head, dst, 0, first);
        System.arraycopy(ring, 0, dst, first, n - first);
        head = (head + n) % ring.length;
        size -= n;
        if (n > 0) {
            notifyAll();
        }
        return n;
    }

    /** A copy of what is buffered, in order, leaving it there. */
    synchronized byte[] contents() {
        byte[] b = new byte[size];
        int first = Math.min(size, ring.length - head);
        System.arraycopy(ring, head, b, 0, first);
        System.arraycopy(ring, 0, b, first, size - first);
        return b;
    }

    /**
     * Puts {@code bytes} before what is buffered (they came first); false, adding nothing, if there
     * is no room for them or the buffer is closed.
     */
    synchronized boolean prepend(byte[] bytes) {
        if (closed || bytes.length > ring.length - size) {
            return false;
        }
        head = Math.floorMod(head - bytes.length, ring.length);
        int first = Math.min(bytes.length, ring.length - head);
        System.arraycopy(bytes, 0, ring, head, first);
        System.arraycopy(bytes, first, ring, 0, bytes.length - first);
        size += bytes.length;
        return true;
    }

    synchronized boolean isEmpty() {
        return size == 0;
    }

    /** Drops what is buffered and ends every wait; later input is refused. */
    synchronized void close() {
        closed = true;
        size = 0;
        notifyAll();
    }

    synchronized boolean isClosed() {
        return closed;
    }
}
