/** virtio-console: one port between the guest's {@code hvc0} and Java streams. */
package dev.kindling.devices.virtio.console;
