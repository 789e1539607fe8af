package dev.kindling.devices.virtio.blk;

import java.util.Objects;

/**
 * How a virtio-blk disk is offered to the guest: read-only (the image is opened read-only and the
 * device has VIRTIO_BLK_F_RO) and the serial that GET_ID returns (at most {@link #SERIAL_MAX_BYTES}
 * bytes; empty: none).
 */
public record BlkOptions(boolean readOnly, String serial) {
    /** VIRTIO_BLK_ID_BYTES. */
    public static final int SERIAL_MAX_BYTES = 20;

    public BlkOptions {
        Objects.requireNonNull(serial, "serial");
    }

    /** Writable, no serial. */
    public static BlkOptions defaults() {
        return new BlkOptions(false, "");
    }

    public BlkOptions withReadOnly(boolean readOnly) {
        return new BlkOptions(readOnly, serial);
    }

    public BlkOptions withSerial(String serial) {
        return new BlkOptions(readOnly, serial);
    }
}
