package dev.kindling.kvm.platform;

/**
 * A legacy PIC's INTR output as the boot vCPU sees it in split-irqchip mode: the vector is injected
 * through the local APIC's LINT0 (ExtINT) when the guest can take it.
 */
public interface ExternalInterrupts {
    /** True while the PIC asserts INTR. */
    boolean pending();

    /** The INTA cycle: the vector to deliver (updates the PIC's in-service state). */
    int acknowledge();
}
