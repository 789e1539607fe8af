/**
 * ivshmem (QEMU's hw/misc/ivshmem.c and docs/specs/ivshmem-spec.txt): memory shared between VMs and
 * the host program as a PCI BAR, with doorbell interrupts between peers learned from a server over a
 * Unix socket. The device model, the host side (shared memory, a host peer), and the server and
 * client of the protocol.
 */
package dev.kindling.devices.ivshmem;
