/**
 * Virtio devices: the device interface ({@link dev.kindling.devices.virtio.VirtioDevice}) between a
 * transport ({@code .mmio}) and the device models ({@code .blk}, {@code .console}, {@code .rng}),
 * with the split virtqueue in {@code .queue}.
 */
package dev.kindling.devices.virtio;
