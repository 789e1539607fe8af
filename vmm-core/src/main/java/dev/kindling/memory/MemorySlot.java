package dev.kindling.memory;

/**
 * Host memory mapped into the guest-physical address space as device memory (a PCI BAR, a device
 * region): it may move or go away at run time and is never guest RAM.
 */
public interface MemorySlot extends AutoCloseable {
    long guestAddress();

    long size();

    boolean readOnly();

    /** Maps the same host memory at {@code guestAddress} instead (a guest moved a BAR). */
    void move(long guestAddress);

    /** Removes the slot from the guest; the host memory stays its owner's. */
    @Override
    void close();
}
