package dev.kindling.devices.virtio.blk;

public final class VirtioBlk {
    public static final int QUEUE_SIZE = 256;
}
