package dev.kindling.boot;

/** A guest-physical range {@code [start, start + size)}. */
public record AddressRange(long start, long size) {
    public AddressRange {
        if (start < 0 || size < 0 || start + size < start) {
            throw new IllegalArgumentException("bad range 0x" + Long.toHexString(start) + " +0x" + Long.toHexString(size));
        }
    }

    /** One past the last address. */
    public long end() {
        return start + size;
    }

    public boolean isEmpty() {
        return size == 0;
    }

    public boolean contains(long address) {
        return address >= start && address - start < size;
    }

    /** True if the two ranges share at least one byte. */
    public boolean overlaps(AddressRange o) {
        return size > 0 && o.size > 0 && start < o.end() && o.start < end();
    }

    @Override
    public String toString() {
        return "[0x" + Long.toHexString(start) + ", 0x" + Long.toHexString(end()) + ")";
    }
}
