package dev.kindling.microvm;

import dev.kindling.bus.AddressSpace;

/**
 * One window the guest can reach: an I/O port range or an MMIO range, who answers it (Kindling's
 * Java model or KVM itself) and what it is. microvm's measure of attack surface.
 */
public record IoMapEntry(AddressSpace space, long base, long length, String device, Owner owner) {
    public enum Owner { KINDLING, KVM }

    @Override
    public String toString() {
        int width = space == AddressSpace.PIO ? 4 : 8;
        return String.format("%-4s 0x%0" + width + "x-0x%0" + width + "x %s (%s)", space.name().toLowerCase(),
                base, base + length - 1, device, owner.name().toLowerCase());
    }
}
