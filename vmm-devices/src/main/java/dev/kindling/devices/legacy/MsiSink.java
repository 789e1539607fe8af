package dev.kindling.devices.legacy;

/**
 * Where an {@link IoApic} sends its interrupts: message-signalled, as an IOAPIC does on the system
 * bus and as KVM takes them with a split irqchip ({@code KVM_SIGNAL_MSI}, or a GSI routed to an MSI).
 */
@FunctionalInterface
public interface MsiSink {
    /** Delivers the message: a 32-bit {@code data} write to {@code address} in the 0xfee00000 window. */
    void deliver(long address, int data);

    /**
     * The guest rewrote pin {@code pin}'s redirection entry; {@code address} and {@code data} are the
     * message it now sends. With a split irqchip KVM only exits on the EOI of a level-triggered vector
     * that it finds in its GSI routing table (QEMU keeps an MSI route per pin for this reason), so a
     * KVM sink should mirror each pin into a route here. Does nothing by default.
     */
    default void routeChanged(int pin, long address, int data, boolean masked) {}

    /**
     * The guest ended the interrupt of level-triggered pin {@code pin} (its Remote IRR is clear now).
     * Called without the IOAPIC's lock, so what it runs may raise the pin again. Does nothing by default.
     */
    default void endOfInterrupt(int pin) {}
}
