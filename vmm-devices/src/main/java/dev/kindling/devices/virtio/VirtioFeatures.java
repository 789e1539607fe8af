package dev.kindling.devices.virtio;

/** Device-independent feature bits (virtio 1.2 section 6). */
public final class VirtioFeatures {
    public static final long RING_INDIRECT_DESC = 1L << 28;
    public static final long RING_EVENT_IDX = 1L << 29;
    public static final long VERSION_1 = 1L << 32;
    public static final long ACCESS_PLATFORM = 1L << 33;
    public static final long RING_PACKED = 1L << 34;

    private VirtioFeatures() {}
}
