package dev.kindling.devices.virtio.blk;

import java.nio.charset.StandardCharsets;

/**
 * How a virtio-blk disk is offered: read-only (the image is opened O_RDONLY with a shared lock and
 * the device offers VIRTIO_BLK_F_RO) and the serial GET_ID answers, at most {@link BlkAbi#ID_BYTES}
 * bytes of UTF-8 without NUL ({@code /sys/block/vda/serial} in the guest; empty by default).
 */
public record BlkOptions(boolean readOnly, String serial) {
    public static final BlkOptions DEFAULTS = new BlkOptions(false, "");

    /** Writable, no serial. */
    public static BlkOptions defaults() {
        return DEFAULTS;
    }

    public BlkOptions {
        if (serial == null) {
            throw new IllegalArgumentException("serial is null: use \"\" for none");
        }
        int bytes = serial.getBytes(StandardCharsets.UTF_8).length;
        if (bytes > BlkAbi.ID_BYTES) {
            throw new IllegalArgumentException("serial '" + serial + "' is " + bytes + " bytes, more than " + BlkAbi.ID_BYTES);
        }
        if (serial.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("serial '" + serial + "' contains a NUL character");
        }
    }

    public BlkOptions withReadOnly(boolean readOnly) {
        return new BlkOptions(readOnly, serial);
    }

    public BlkOptions withSerial(String serial) {
        return new BlkOptions(readOnly, serial);
    }

    /** The GET_ID answer: the serial, NUL-padded to {@link BlkAbi#ID_BYTES}. */
    byte[] id() {
        byte[] id = new byte[BlkAbi.ID_BYTES];
        byte[] s = serial.getBytes(StandardCharsets.UTF_8);
        System.arraycopy(s, 0, id, 0, s.length);
        return id;
    }
}
