package dev.kindling.irq;

import dev.kindling.sys.EventFd;

/**
 * The machine's interrupt sources for devices: lines by GSI (edges through an irqfd, so a device
 * thread raises them without an exit), MSI vectors for PCI devices, and end-of-interrupt notices for
 * level-triggered lines.
 */
public interface InterruptService {
    /** The line of {@code gsi} (an IOAPIC pin). */
    IrqLine line(int gsi);

    /** A new MSI vector, unconfigured and masked; close it to free its route. */
    MsiVector msiVector();

    /**
     * A new MSI vector, unconfigured and masked, raised by signals on {@code source} in the hypervisor
     * (no thread of the VMM's in between), an eventfd that stays the caller's: close the vector before
     * it. Unsupported unless the implementation says otherwise.
     */
    default MsiVector msiVector(EventFd source) {
        throw new UnsupportedOperationException("these interrupts cannot take a caller's eventfd as an MSI source");
    }

    /**
     * Signals on {@code trigger} assert {@code gsi} in the hypervisor, with no thread of the VMM's in
     * between. With {@code resample} the line is level-triggered: it stays asserted until the guest
     * ends the interrupt, which lowers it and signals {@code resample} (VFIO unmasks on it). Both
     * eventfds stay the caller's: close the result before them. {@link UnsupportedOperationException}
     * where the hypervisor does not own the interrupt controller (a split irqchip), or cannot resample.
     */
    default AutoCloseable irqfd(int gsi, EventFd trigger, EventFd resample) {
        throw new UnsupportedOperationException("these interrupts cannot raise a line from a caller's eventfd in the hypervisor");
    }

    /**
     * Runs {@code listener} each time the guest ends a level-triggered interrupt on {@code gsi}, on a
     * thread that holds no interrupt controller's lock (so it may raise the line again). Closing the
     * result removes it.
     */
    AutoCloseable onEndOfInterrupt(int gsi, Runnable listener);
}
