package dev.kindling.memory;

/**
 * An access to guest memory after it was closed (the machine closed while a device thread still ran).
 * The access touched nothing: the mapping's arena refused it.
 */
public final class GuestMemoryClosedException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    private final long address;

    public GuestMemoryClosedException(long address, long length, Throwable cause) {
        super("guest memory is closed: access [0x" + Long.toHexString(address) + ", +0x" + Long.toHexString(length)
                + ") refused", cause);
        this.address = address;
    }

    public long address() {
        return address;
    }
}
