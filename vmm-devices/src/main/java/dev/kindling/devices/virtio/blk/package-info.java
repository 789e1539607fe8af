/**
 * virtio-blk: the device ({@link dev.kindling.devices.virtio.blk.VirtioBlk}), its image
 * ({@link dev.kindling.devices.virtio.blk.DiskImage}), the request parser apart from any I/O
 * ({@link dev.kindling.devices.virtio.blk.BlkRequest}) and the ABI checked against the C header
 * ({@link dev.kindling.devices.virtio.blk.BlkAbi}).
 */
package dev.kindling.devices.virtio.blk;
