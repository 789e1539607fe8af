/**
 * The virtio-mmio transport (virtio 1.2 section 4.2): the register window through which a guest's
 * driver reaches a {@link dev.kindling.devices.virtio.VirtioDevice}, with queue notifications through
 * ioeventfds and interrupts through the context's line.
 */
package dev.kindling.devices.virtio.mmio;
