package dev.kindling.device;

/**
 * A device model as the guest sees it through a bus: reads and writes of 1, 2, 4 or 8 bytes at an
 * offset into the device's range. Values are little-endian, in the low {@code size} bytes of the long.
 * Knows nothing of KVM, so it can be tested by calling these methods directly.
 *
 * <p>A device that needs more than its bus window (guest memory, interrupts, ioeventfds, threads)
 * is made by a factory given a {@link DeviceContext}.
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

    /**
     * The machine resets (the guest rebooted in place): back to the state after creation. Returns once
     * the device's threads have stopped serving the old state.
     */
    default void reset() {}

    /**
     * {@link dev.kindling.machine.Machine#pause()}: returns once the device's own threads touch no
     * guest memory and raise no interrupts, until {@link #resume()}. vCPUs are parked first.
     */
    default void quiesce() {}

    /** Undoes {@link #quiesce()}. */
    default void resume() {}

    /**
     * Releases threads, descriptors and memory the device holds, and joins the threads it started:
     * after this returns, nothing of the device touches guest memory.
     */
    @Override
    default void close() {}

    /** All ones of an access of {@code size} bytes: what a read of nothing returns. */
    static long ones(int size) {
        return size >= 8 ? -1L : (1L << (size * 8)) - 1;
    }
}
