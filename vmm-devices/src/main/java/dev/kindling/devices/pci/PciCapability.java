package dev.kindling.devices.pci;

/**
 * A capability in a function's configuration space (MSI-X, vendor-specific). The host bridge lays the
 * capabilities out from offset 0x40, writes each one's id and next pointer (its first two bytes) and
 * passes accesses to the rest here.
 */
public interface PciCapability {
    /** The capability id, e.g. 0x11 for MSI-X. */
    int id();

    /** Its length in bytes, the two header bytes included; a multiple of 4. */
    int length();

    /** Reads {@code size} bytes at {@code offset} (2 or more) into the capability. */
    long read(int offset, int size);

    /** Writes the low {@code size} bytes of {@code value} at {@code offset} (2 or more). */
    void write(int offset, int size, long value);
}
