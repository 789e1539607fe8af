/**
 * virtio-net (virtio 1.2 section 5.1): {@link dev.kindling.devices.virtio.net.VirtioNet}, the
 * device, and its {@link dev.kindling.devices.virtio.net.NetBackend backends}: a tap device, the
 * passt user-mode network daemon, and an in-process {@link dev.kindling.devices.virtio.net.NetSwitch}.
 */
package dev.kindling.devices.virtio.net;
