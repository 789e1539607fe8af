package dev.kindling.device;

/**
 * A device model as the guest sees it through a bus: reads and writes of 1, 2, 4 or 8 bytes at an
 * offset into the device's range. Values are little-endian, in the low {@code size} bytes of the long.
 * Knows nothing of KVM, so it can be tested by calling these methods directly.
 *
 * <p>Accesses may come from several vCPU threads at once; a device that keeps state synchronizes.
 * A device never throws because of what the guest did: an access it does not understand reads as
 * all ones (or zero, as the real device would) and writes are ignored.
 */
public interface Device extends AutoCloseable {
    /** A short name for logs and the I/O map, e.g. {@code "serial0"}. */
    String name();

    /** Reads {@code size} bytes at {@code offset}. */
    long read(long offset, int size);

    /** Writes the low {@code size} bytes of {@code value} at {@code offset}. */
    void write(long offset, int size, long value);

    /** Releases threads, descriptors and memory the device holds. */
    @Override
    default void close() {}

    /** All ones of an access of {@code size} bytes: what a read of nothing returns. */
    static long ones(int size) {
        return size >= 8 ? -1L : (1L << (size * 8)) - 1;
    }
}
