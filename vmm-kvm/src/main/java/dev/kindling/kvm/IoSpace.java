package dev.kindling.kvm;

/** Which address space an ioeventfd watches: x86 I/O ports or guest-physical memory. */
public enum IoSpace {
    PIO,
    MMIO
}
