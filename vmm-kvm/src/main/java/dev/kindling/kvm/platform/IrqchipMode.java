package dev.kindling.kvm.platform;

/**
 * Where the interrupt controllers live. {@link #SPLIT}: local APICs in KVM; IOAPIC, PIC and PIT are
 * the VMM's (QEMU microvm's default), so a machine can leave the PIC and PIT out. {@link #KERNEL}:
 * KVM's own PIC and IOAPIC (and optionally its PIT).
 */
public enum IrqchipMode {
    KERNEL, SPLIT
}
