package dev.kindling.devices.virtio.blk;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * What the device tells the driver in its configuration space, and the limits it holds the driver
 * to: capacity in 512-byte sectors, the logical block size, data segments per request, and the
 * discard and write-zeroes bounds.
 */
public record BlkConfig(
        long capacity,
        int blkSize,
        int segMax,
        int maxDiscardSectors,
        int maxDiscardSeg,
        int discardSectorAlignment,
        int maxWriteZeroesSectors,
        int maxWriteZeroesSeg,
        boolean writeZeroesMayUnmap) {

    /** Data segments per request: the queue size less the header and the status buffers, as QEMU offers. */
    public static final int SEG_MAX = VirtioBlk.QUEUE_SIZE - 2;
    /** Sectors per discard or write-zeroes range: 2^22 (2 GiB), so a range's byte length never overflows. */
    public static final int MAX_RANGE_SECTORS = 1 << 22;
    /** Ranges per discard or write-zeroes request. */
    public static final int MAX_RANGES = 32;

    public BlkConfig {
        if (capacity < 0) {
            throw new IllegalArgumentException("capacity " + capacity + " sectors is negative");
        }
        if (blkSize < BlkAbi.SECTOR_SIZE || Integer.bitCount(blkSize) != 1) {
            throw new IllegalArgumentException("block size " + blkSize + " is not a power of two of at least 512");
        }
        if (segMax < 1 || maxDiscardSeg < 1 || maxWriteZeroesSeg < 1 || maxDiscardSectors < 1 || maxWriteZeroesSectors < 1
                || discardSectorAlignment < 1) {
            throw new IllegalArgumentException("segment and range limits must be positive: " + this);
        }
    }

    /** The limits this device uses for a disk of {@code capacity} sectors and logical block size {@code blkSize}. */
    public static BlkConfig of(long capacity, int blkSize) {
        // Discards aligned to 4 KiB (or the device's block) match the host filesystem's blocks, so
        // punching a hole frees space instead of zeroing part of a block.
        int alignment = Math.max(blkSize, 4096) / BlkAbi.SECTOR_SIZE;
        return new BlkConfig(capacity, blkSize, SEG_MAX, MAX_RANGE_SECTORS, MAX_RANGES, alignment,
                MAX_RANGE_SECTORS, MAX_RANGES, true);
    }

    /** The configuration space bytes, laid out as {@link BlkAbi#CONFIG}. */
    byte[] encode() {
        MemorySegment s = MemorySegment.ofArray(new byte[(int) BlkAbi.CONFIG.byteSize()]);
        s.set(ValueLayout.JAVA_LONG_UNALIGNED, BlkAbi.configOffset("capacity"), capacity);
        s.set(ValueLayout.JAVA_INT_UNALIGNED, BlkAbi.configOffset("seg_max"), segMax);
        s.set(ValueLayout.JAVA_INT_UNALIGNED, BlkAbi.configOffset("blk_size"), blkSize);
        s.set(ValueLayout.JAVA_INT_UNALIGNED, BlkAbi.configOffset("max_discard_sectors"), maxDiscardSectors);
        s.set(ValueLayout.JAVA_INT_UNALIGNED, BlkAbi.configOffset("max_discard_seg"), maxDiscardSeg);
        s.set(ValueLayout.JAVA_INT_UNALIGNED, BlkAbi.configOffset("discard_sector_alignment"), discardSectorAlignment);
        s.set(ValueLayout.JAVA_INT_UNALIGNED, BlkAbi.configOffset("max_write_zeroes_sectors"), maxWriteZeroesSectors);
        s.set(ValueLayout.JAVA_INT_UNALIGNED, BlkAbi.configOffset("max_write_zeroes_seg"), maxWriteZeroesSeg);
        s.set(ValueLayout.JAVA_BYTE, BlkAbi.configOffset("write_zeroes_may_unmap"), (byte) (writeZeroesMayUnmap ? 1 : 0));
        return s.toArray(ValueLayout.JAVA_BYTE);
    }
}
