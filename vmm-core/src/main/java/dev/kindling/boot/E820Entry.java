package dev.kindling.boot;

/**
 * One entry of the BIOS-style e820 memory map, as the Linux zero page ({@code boot_params.e820_table},
 * 20 bytes each) and the PVH {@code hvm_memmap_table_entry} (24 bytes each) both carry it.
 */
public record E820Entry(long address, long size, int type) {
    /** Usable RAM. */
    public static final int RAM = 1;
    /** Reserved: the guest must not allocate from it. */
    public static final int RESERVED = 2;

    public E820Entry {
        if (size <= 0) {
            throw new IllegalArgumentException("e820 entry with size " + size);
        }
    }

    public static E820Entry ram(long address, long size) {
        return new E820Entry(address, size, RAM);
    }

    public static E820Entry reserved(long address, long size) {
        return new E820Entry(address, size, RESERVED);
    }

    public long end() {
        return address + size;
    }

    @Override
    public String toString() {
        return (type == RAM ? "RAM" : type == RESERVED ? "reserved" : "type " + type)
                + " [0x" + Long.toHexString(address) + ", 0x" + Long.toHexString(end()) + ")";
    }
}
