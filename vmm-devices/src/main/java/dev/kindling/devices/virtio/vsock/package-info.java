/**
 * virtio-vsock (virtio 1.2 section 5.10): stream sockets between the host program and the guest,
 * with credit-based flow control. {@link dev.kindling.devices.virtio.vsock.VirtioVsock} is the
 * device and its connection table; {@link dev.kindling.devices.virtio.vsock.Vsock} is the host side:
 * the Java API ({@code connect}, {@code listen}) and Firecracker's host Unix-socket protocol.
 */
package dev.kindling.devices.virtio.vsock;
