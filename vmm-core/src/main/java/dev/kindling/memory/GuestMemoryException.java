package dev.kindling.memory;

/** A guest-physical access outside guest RAM, straddling two regions, or with an overflowing length. */
public final class GuestMemoryException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final long address;
    private final long length;

    public GuestMemoryException(long address, long length, String why) {
        super("guest memory access [0x" + Long.toHexString(address) + ", +0x" + Long.toHexString(length) + "): " + why);
        this.address = address;
        this.length = length;
    }

    public long address() {
        return address;
    }

    public long length() {
        return length;
    }
}
