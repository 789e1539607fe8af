package dev.kindling.kvm.platform;

/** What the VMM's IOAPIC model calls on a split irqchip; {@link KvmPlatform#connectIoapic} returns it. */
public interface IoapicLink {
    /** Delivers the model's interrupt: KVM_SIGNAL_MSI of {@code data} to {@code address}. */
    void deliver(long address, int data);

    /**
     * The guest rewrote pin {@code pin}'s redirection entry, which now sends {@code data} to
     * {@code address} ({@code data} bit 15: level-triggered). The pin's GSI is routed to that message
     * while unmasked (KVM reports the EOI of a level-triggered vector only for vectors its routing
     * table holds), and its line's edges go straight through an irqfd while the pin is unmasked and
     * edge-triggered. May call {@link IoapicModel#setPin} back, on this thread, with edges that were
     * in flight on the irqfd.
     */
    void pinChanged(int pin, long address, int data, boolean masked);

    /**
     * The guest ended the interrupt of level-triggered pin {@code pin}: runs the end-of-interrupt
     * listeners of its GSI. The caller holds no interrupt controller's lock.
     */
    void endOfInterrupt(int pin);
}
