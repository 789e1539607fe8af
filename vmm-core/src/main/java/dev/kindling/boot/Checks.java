package dev.kindling.boot;

import static dev.kindling.boot.MicrovmLayout.hex;

import dev.kindling.memory.GuestMemory;

/** Placement checks shared by the loaders and configurators. */
final class Checks {
    private Checks() {
    }

    /** Throws unless {@code r} is RAM (in one region) and clear of the boot structures. */
    static void placeable(GuestMemory memory, AddressRange r, String what) {
        if (r.isEmpty()) {
            return;
        }
        if (!memory.isValid(r.start(), r.size())) {
            throw new BootException(what + " " + r + " is outside guest RAM");
        }
        MicrovmLayout.Area area = MicrovmLayout.overlappedBootArea(r);
        if (area != null) {
            throw new BootException(what + " " + r + " overlaps the " + area.name() + " " + area.range());
        }
    }

    /** Throws unless {@code [address, address + size)} is RAM in one region. */
    static void ram(GuestMemory memory, long address, long size, String what) {
        if (!memory.isValid(address, size)) {
            throw new BootException(what + " [" + hex(address) + ", +" + hex(size) + ") is outside guest RAM");
        }
    }
}
