package dev.kindling.devices.virtio;

/** Virtio device IDs (virtio 1.2 section 5). */
public final class VirtioIds {
    public static final int NET = 1, BLOCK = 2, CONSOLE = 3, RNG = 4, VSOCK = 19;

    private VirtioIds() {}
}
