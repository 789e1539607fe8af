/**
 * The PCI that devices such as ivshmem need, and no more: a host bridge at 00:00.0 reached through
 * configuration mechanism 1 (ports 0xcf8 and 0xcfc), endpoint functions with BARs that Kindling places
 * in the MMIO hole as firmware would and the guest may move, MSI-X, and legacy interrupts routed to
 * IOAPIC pins and described in the MP table. A machine has it only when a PCI function is added.
 */
package dev.kindling.devices.pci;
