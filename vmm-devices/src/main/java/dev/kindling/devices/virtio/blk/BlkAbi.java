package dev.kindling.devices.virtio.blk;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;

/**
 * The virtio-blk ABI (virtio 1.2 section 5.2, {@code linux/virtio_blk.h}): feature bits, request
 * types, status codes and the three structures, checked against the header by a test. Little-endian,
 * as every virtio 1.x field is.
 */
public final class BlkAbi {
    public static final int SECTOR_SIZE = 512;
    public static final int SECTOR_SHIFT = 9;
    /** The GET_ID answer: a serial of up to this many bytes, NUL-padded. */
    public static final int ID_BYTES = 20;

    public static final int F_SIZE_MAX = 1, F_SEG_MAX = 2, F_RO = 5, F_BLK_SIZE = 6, F_FLUSH = 9,
            F_DISCARD = 13, F_WRITE_ZEROES = 14;

    public static final int T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11, T_WRITE_ZEROES = 13;

    public static final int S_OK = 0, S_IOERR = 1, S_UNSUPP = 2;

    /** The only flag a discard or write-zeroes segment may carry, and only for write-zeroes. */
    public static final int WRITE_ZEROES_FLAG_UNMAP = 1;

    /** {@code struct virtio_blk_outhdr}: what every request starts with. */
    public static final StructLayout OUTHDR = MemoryLayout.structLayout(
            ValueLayout.JAVA_INT.withName("type"),
            ValueLayout.JAVA_INT.withName("ioprio"),
            ValueLayout.JAVA_LONG.withName("sector"));

    public static final int HEADER_SIZE = (int) OUTHDR.byteSize();
    static final long OUTHDR_TYPE = offset(OUTHDR, "type"), OUTHDR_SECTOR = offset(OUTHDR, "sector");

    /** {@code struct virtio_blk_discard_write_zeroes}: one range of a DISCARD or WRITE_ZEROES request. */
    public static final StructLayout DISCARD_WRITE_ZEROES = MemoryLayout.structLayout(
            ValueLayout.JAVA_LONG.withName("sector"),
            ValueLayout.JAVA_INT.withName("num_sectors"),
            ValueLayout.JAVA_INT.withName("flags"));

    public static final int RANGE_SIZE = (int) DISCARD_WRITE_ZEROES.byteSize();
    static final long RANGE_SECTOR = offset(DISCARD_WRITE_ZEROES, "sector"),
            RANGE_NUM_SECTORS = offset(DISCARD_WRITE_ZEROES, "num_sectors"),
            RANGE_FLAGS = offset(DISCARD_WRITE_ZEROES, "flags");

    /**
     * {@code struct virtio_blk_config} up to {@code write_zeroes_may_unmap} and its padding: the
     * fields this device fills. Secure erase and zoned fields after it are not offered.
     */
    public static final StructLayout CONFIG = MemoryLayout.structLayout(
            ValueLayout.JAVA_LONG.withName("capacity"),
            ValueLayout.JAVA_INT.withName("size_max"),
            ValueLayout.JAVA_INT.withName("seg_max"),
            MemoryLayout.structLayout(
                    ValueLayout.JAVA_SHORT.withName("cylinders"),
                    ValueLayout.JAVA_BYTE.withName("heads"),
                    ValueLayout.JAVA_BYTE.withName("sectors")).withName("geometry"),
            ValueLayout.JAVA_INT.withName("blk_size"),
            ValueLayout.JAVA_BYTE.withName("physical_block_exp"),
            ValueLayout.JAVA_BYTE.withName("alignment_offset"),
            ValueLayout.JAVA_SHORT.withName("min_io_size"),
            ValueLayout.JAVA_INT.withName("opt_io_size"),
            ValueLayout.JAVA_BYTE.withName("wce"),
            ValueLayout.JAVA_BYTE.withName("unused"),
            ValueLayout.JAVA_SHORT.withName("num_queues"),
            ValueLayout.JAVA_INT.withName("max_discard_sectors"),
            ValueLayout.JAVA_INT.withName("max_discard_seg"),
            ValueLayout.JAVA_INT.withName("discard_sector_alignment"),
            ValueLayout.JAVA_INT.withName("max_write_zeroes_sectors"),
            ValueLayout.JAVA_INT.withName("max_write_zeroes_seg"),
            ValueLayout.JAVA_BYTE.withName("write_zeroes_may_unmap"),
            MemoryLayout.sequenceLayout(3, ValueLayout.JAVA_BYTE).withName("unused1"));

    private BlkAbi() {}

    /** The byte offset of the named field of {@link #CONFIG}. */
    static long configOffset(String field) {
        return offset(CONFIG, field);
    }

    private static long offset(StructLayout struct, String field) {
        return struct.byteOffset(MemoryLayout.PathElement.groupElement(field));
    }
}
