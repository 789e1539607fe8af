package dev.kindling.devices.pci;

/**
 * One base address register of a function, as the function declares it: its size (a power of two)
 * and kind. Where it lives is the host bridge's business (it places it, the guest may move it).
 *
 * @param index        the BAR number, 0-5; a 64-bit memory BAR also takes {@code index + 1}
 * @param size         bytes, a power of two: at least 16 for memory, 4 to 256 for I/O
 * @param kind         memory below 4 GiB, memory anywhere, or I/O ports
 * @param prefetchable the memory has no side effects on reads (shared RAM does, registers do not)
 */
public record PciBar(int index, long size, Kind kind, boolean prefetchable) {
    public enum Kind { MEMORY32, MEMORY64, IO }

    public PciBar {
        int last = kind == Kind.MEMORY64 ? 4 : 5;
        if (index < 0 || index > last) {
            throw new IllegalArgumentException("BAR index " + index + " is not in 0-" + last + " for a " + kind + " BAR");
        }
        if (size <= 0 || Long.bitCount(size) != 1) {
            throw new IllegalArgumentException("BAR" + index + " size " + size + " is not a power of two");
        }
        if (kind == Kind.IO ? size < 4 || size > 256 : size < 16) {
            throw new IllegalArgumentException("BAR" + index + " size " + size + " is out of range for a " + kind + " BAR");
        }
        if (kind == Kind.MEMORY32 && size > 1L << 31) {
            throw new IllegalArgumentException("BAR" + index + " of " + size + " bytes does not fit below 4 GiB");
        }
        if (kind == Kind.IO && prefetchable) {
            throw new IllegalArgumentException("BAR" + index + ": an I/O BAR cannot be prefetchable");
        }
    }
}
