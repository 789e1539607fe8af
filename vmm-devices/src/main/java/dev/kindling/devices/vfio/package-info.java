/**
 * VFIO-platform passthrough: a host platform device's MMIO regions mapped into the guest (or
 * trapped) and its interrupts wired to the guest's, as QEMU's hw/vfio/platform.c does. The device
 * model talks to the kernel through {@link dev.kindling.devices.vfio.PlatformDeviceBackend}, so it is
 * tested against an in-process device where the host has no VFIO.
 */
package dev.kindling.devices.vfio;
