/** Port I/O and MMIO dispatch to devices. */
package dev.kindling.bus;
