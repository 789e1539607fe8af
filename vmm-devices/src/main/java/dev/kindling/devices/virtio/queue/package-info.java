/**
 * The split virtqueue, device side (like rust-vmm's {@code virtio-queue}): independent of the
 * transport and of KVM, tested against a mock driver that writes chains into guest memory.
 */
package dev.kindling.devices.virtio.queue;
