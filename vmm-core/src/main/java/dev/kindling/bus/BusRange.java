package dev.kindling.bus;

import dev.kindling.device.Device;

/** A device's window on a bus: {@code [base, base + length)}. */
public record BusRange(long base, long length, Device device) {
    public BusRange {
        if (length <= 0) {
            throw new IllegalArgumentException("bus range for " + device.name() + " must have a positive length");
        }
        if (base < 0 || base + length < base) {
            throw new IllegalArgumentException("bus range for " + device.name() + " at 0x" + Long.toHexString(base) + " overflows");
        }
    }

    public long end() {
        return base + length;
    }

    public boolean contains(long address) {
        return address >= base && address - base < length;
    }

    @Override
    public String toString() {
        return String.format("0x%x-0x%x %s", base, end() - 1, device.name());
    }
}
