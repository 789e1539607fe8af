package dev.kindling.kvm.platform;

/**
 * The VMM's IOAPIC as a split irqchip's interrupt service drives it. The model sends its interrupts,
 * routes and end-of-interrupt notices back through the {@link IoapicLink} that
 * {@link KvmPlatform#connectIoapic} returns.
 */
public interface IoapicModel {
    /** Sets the input level of pin {@code pin} (0-23); from any thread. */
    void setPin(int pin, boolean level);

    /**
     * A local APIC sent EOI for {@code vector} (KVM_EXIT_IOAPIC_EOI), on a vCPU thread. The model
     * reports each level-triggered pin it ends through {@link IoapicLink#endOfInterrupt(int)}, with no
     * lock of its own held.
     */
    void endOfInterrupt(int vector);
}
