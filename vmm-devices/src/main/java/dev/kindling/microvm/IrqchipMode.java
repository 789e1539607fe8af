package dev.kindling.microvm;

/**
 * Where the interrupt controllers live. {@link #SPLIT} (the default, as QEMU microvm): local APICs in
 * KVM, IOAPIC, PIC and PIT in Kindling, so {@code pic=off} and {@code pit=off} really remove them.
 * {@link #KERNEL}: KVM's own PIC, IOAPIC (and PIT): fewer exits to user space, but KVM's PIC is always
 * there, so {@code pic=off} is refused.
 */
public enum IrqchipMode {
    KERNEL, SPLIT
}
