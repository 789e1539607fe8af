package dev.kindling.irq;

import dev.kindling.sys.EventFd;

/**
 * One message-signalled interrupt (a PCI MSI or MSI-X table entry): address, data and a mask bit.
 * A trigger while masked is kept pending and delivered when the vector is unmasked, as PCI requires.
 */
public interface MsiVector extends AutoCloseable {
    /** Sets the message: a 32-bit {@code data} write to {@code address}. */
    void configure(long address, int data);

    void setMasked(boolean masked);

    boolean masked();

    /** True if a trigger arrived while masked and was not delivered yet. */
    boolean pending();

    /** Raises the interrupt from any thread, without an exit. */
    void trigger();

    /**
     * The eventfd that raises this vector when signalled, for a producer outside Java (VFIO). While
     * the vector is masked, such signals are held back and delivered on unmask.
     */
    EventFd irqfd();

    @Override
    void close();
}
