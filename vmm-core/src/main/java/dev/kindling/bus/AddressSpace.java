package dev.kindling.bus;

/** The two address spaces an x86 guest reaches devices through. */
public enum AddressSpace {
    /** I/O ports (IN/OUT), 64 KiB of them. */
    PIO,
    /** Guest-physical memory that no RAM backs. */
    MMIO
}
