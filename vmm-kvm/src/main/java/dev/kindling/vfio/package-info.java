/**
 * The VFIO binding ({@code <linux/vfio.h>}): a container (the IOMMU context), groups, and device fds
 * with their regions and interrupts, in the style of the KVM binding: each struct, ioctl and
 * constant declared once and checked against the header by a test, one thin wrapper per fd type.
 */
package dev.kindling.vfio;
