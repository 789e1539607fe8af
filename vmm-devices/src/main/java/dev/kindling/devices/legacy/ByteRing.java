package dev.kindling.devices.legacy;

/**
 * A FIFO of bytes in a ring that grows on demand up to a fixed limit. Not synchronized: the owner
 * guards it with its own lock.
 */
final class ByteRing {
    private final int limit;
    private byte[] buf;
    private int head;
    private int size;

    /** A ring that starts at {@code initial} bytes and never holds more than {@code limit}. */
    ByteRing(int initial, int limit) {
        if (initial <= 0 || limit < initial) {
            throw new IllegalArgumentException("ring of " + initial + ".." + limit + " bytes");
        }
        this.limit = limit;
        this.buf = new byte[initial];
    }

    ByteRing(int capacity) {
        this(capacity, capacity);
    }

    int size() {
        return size;
    }

    boolean isEmpty() {
        return size == 0;
    }

    /** Free room before the limit. */
    int room() {
        return limit - size;
    }

    /** Appends a byte; false (and nothing stored) when the ring is at its limit. */
    boolean push(int b) {
        if (size == limit) {
            return false;
        }
        if (size == buf.length) {
            grow();
        }
        buf[(head + size) % buf.length] = (byte) b;
        size++;
        return true;
    }

    /** Appends {@code len} bytes, as many as fit; returns how many were stored. */
    int push(byte[] src, int off, int len) {
        int n = 0;
        while (n < len && push(src[off + n])) {
            n++;
        }
        return n;
    }

    /** Removes and returns the oldest byte (0..255), or -1 when empty. */
    int pop() {
        if (size == 0) {
            return -1;
        }
        int b = buf[head] & 0xff;
        head = (head + 1) % buf.length;
        size--;
        return b;
    }

    /** Removes up to {@code len} bytes into {@code dst}; returns how many. */
    int pop(byte[] dst, int off, int len) {
        int n = 0;
        while (n < len && size > 0) {
            dst[off + n++] = (byte) pop();
        }
        return n;
    }

    /** The bytes held, oldest first, without removing them. */
    byte[] toArray() {
        byte[] b = new byte[size];
        for (int i = 0; i < size; i++) {
            b[i] = buf[(head + i) % buf.length];
        }
        return b;
    }

    void clear() {
        head = 0;
        size = 0;
    }

    private void grow() {
        byte[] next = new byte[(int) Math.min((long) buf.length * 2, limit)];
        for (int i = 0; i < size; i++) {
            next[i] = buf[(head + i) % buf.length];
        }
        buf = next;
        head = 0;
    }
}
