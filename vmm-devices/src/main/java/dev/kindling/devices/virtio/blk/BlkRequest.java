package dev.kindling.devices.virtio.blk;

import dev.kindling.devices.virtio.queue.Descriptor;
import dev.kindling.devices.virtio.queue.DescriptorChain;
import dev.kindling.memory.GuestMemory;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;

/**
 * One virtio-blk request (virtio 1.2 section 5.2.6) as parsed from a descriptor chain, before any
 * I/O: a request the device can serve, or {@link Rejected} with the status the driver gets. The
 * request is a header (type, reserved, sector) in the device-readable bytes, then data, and a status
 * byte in the last device-writable byte; buffers may be framed any way. Parsing reads only the header
 * and discard ranges from guest memory, touches nothing outside the chain's buffers (which the queue
 * has checked to lie in guest RAM) and throws nothing for anything the driver wrote.
 */
public sealed interface BlkRequest {
    /** The chain's head index, to return in the used ring. */
    int head();

    /** Read {@code length} bytes from {@code sector} into {@code data}. */
    record Read(int head, long sector, List<Descriptor> data, long length, long status) implements BlkRequest {}

    /** Write {@code length} bytes of {@code data} at {@code sector}. */
    record Write(int head, long sector, List<Descriptor> data, long length, long status) implements BlkRequest {}

    /** Make every write completed so far durable. */
    record Flush(int head, long status) implements BlkRequest {}

    /** Write the serial into {@code buffer} ({@code length} bytes, up to {@link BlkAbi#ID_BYTES} of them used). */
    record GetId(int head, List<Descriptor> buffer, long length, long status) implements BlkRequest {}

    /** Discard {@code ranges}: the device may free them; they read back as zeros. */
    record Discard(int head, List<Range> ranges, long status) implements BlkRequest {}

    /** Make {@code ranges} read back as zeros, freeing them where a range says {@code unmap}. */
    record WriteZeroes(int head, List<Range> ranges, long status) implements BlkRequest {}

    /**
     * A request the device does not serve: {@code status} goes into the status byte at
     * {@code statusAddress}, or, with no writable status byte, the head is returned with length 0.
     */
    record Rejected(int head, int status, OptionalLong statusAddress, String reason) implements BlkRequest {}

    /** One range of a discard or write-zeroes request, checked against the capacity and the limits. */
    record Range(long sector, int sectors, boolean unmap) {
        public long offset() {
            return sector << BlkAbi.SECTOR_SHIFT;
        }

        public long byteLength() {
            return Integer.toUnsignedLong(sectors) << BlkAbi.SECTOR_SHIFT;
        }
    }

    /**
     * What a request is checked against: the disk's limits, whether it is read-only (the device's
     * setting, not whether the driver accepted VIRTIO_BLK_F_RO) and whether the driver negotiated
     * discard and write-zeroes.
     */
    record Limits(BlkConfig config, boolean readOnly, boolean discard, boolean writeZeroes) {
        public static Limits of(BlkConfig config, boolean readOnly, long negotiatedFeatures) {
            return new Limits(config, readOnly,
                    (negotiatedFeatures & (1L << BlkAbi.F_DISCARD)) != 0,
                    (negotiatedFeatures & (1L << BlkAbi.F_WRITE_ZEROES)) != 0);
        }
    }

    /** Parses {@code chain}; never throws for what the driver wrote. */
    static BlkRequest parse(DescriptorChain chain, GuestMemory memory, Limits limits) {
        List<Descriptor> readable = new ArrayList<>();
        List<Descriptor> writable = new ArrayList<>();
        for (Descriptor d : chain.descriptors()) {
            if (d.length() != 0) {
                (d.writable() ? writable : readable).add(d);
            }
        }
        int head = chain.head();
        if (writable.isEmpty()) {
            return new Rejected(head, BlkAbi.S_IOERR, OptionalLong.empty(), "no device-writable status byte");
        }
        Descriptor last = writable.getLast();
        long status = last.address() + Buffers.length(last) - 1;
        long readLength = Buffers.length(readable);
        long dataIn = Buffers.length(writable) - 1;
        if (readLength < BlkAbi.HEADER_SIZE) {
            return reject(head, status, "header of " + readLength + " bytes, not " + BlkAbi.HEADER_SIZE);
        }
        byte[] header = new byte[BlkAbi.HEADER_SIZE];
        Buffers.read(memory, readable, 0, header);
        MemorySegment h = MemorySegment.ofArray(header);
        int type = h.get(ValueLayout.JAVA_INT_UNALIGNED, BlkAbi.OUTHDR_TYPE);
        long sector = h.get(ValueLayout.JAVA_LONG_UNALIGNED, BlkAbi.OUTHDR_SECTOR);
        long dataOut = readLength - BlkAbi.HEADER_SIZE;
        BlkConfig config = limits.config();
        return switch (type) {
            case BlkAbi.T_IN -> {
                if (dataOut != 0) {
                    yield reject(head, status, "read request with " + dataOut + " device-readable data bytes");
                }
                List<Descriptor> data = Buffers.range(writable, 0, dataIn);
                String bad = checkData(sector, dataIn, data, config);
                yield bad != null ? reject(head, status, bad) : new Read(head, sector, data, dataIn, status);
            }
            case BlkAbi.T_OUT -> {
                if (limits.readOnly()) {
                    yield reject(head, status, "write to a read-only disk");
                }
                if (dataIn != 0) {
                    yield reject(head, status, "write request with " + dataIn + " device-writable data bytes");
                }
                List<Descriptor> data = Buffers.range(readable, BlkAbi.HEADER_SIZE, dataOut);
                String bad = checkData(sector, dataOut, data, config);
                yield bad != null ? reject(head, status, bad) : new Write(head, sector, data, dataOut, status);
            }
            case BlkAbi.T_FLUSH -> dataOut != 0 || dataIn != 0
                    ? reject(head, status, "flush request with data")
                    : new Flush(head, status);
            case BlkAbi.T_GET_ID -> {
                if (dataOut != 0 || dataIn == 0) {
                    yield reject(head, status, "get-id request with " + dataOut + " readable and " + dataIn + " writable data bytes");
                }
                yield new GetId(head, Buffers.range(writable, 0, dataIn), dataIn, status);
            }
            case BlkAbi.T_DISCARD, BlkAbi.T_WRITE_ZEROES -> {
                boolean discard = type == BlkAbi.T_DISCARD;
                if (!(discard ? limits.discard() : limits.writeZeroes())) {
                    yield new Rejected(head, BlkAbi.S_UNSUPP, OptionalLong.of(status),
                            (discard ? "discard" : "write-zeroes") + " was not negotiated");
                }
                if (limits.readOnly()) {
                    yield reject(head, status, (discard ? "discard" : "write-zeroes") + " on a read-only disk");
                }
                if (dataIn != 0) {
                    yield reject(head, status, "range request with " + dataIn + " device-writable data bytes");
                }
                yield ranges(head, status, discard, readable, dataOut, memory, config);
            }
            default -> new Rejected(head, BlkAbi.S_UNSUPP, OptionalLong.of(status), "request type " + Integer.toUnsignedString(type));
        };
    }

    private static Rejected reject(int head, long status, String reason) {
        return new Rejected(head, BlkAbi.S_IOERR, OptionalLong.of(status), reason);
    }

    /** Why a read or write of {@code length} bytes at {@code sector} in {@code pieces} is refused, or null. */
    private static String checkData(long sector, long length, List<Descriptor> pieces, BlkConfig config) {
        if (length % BlkAbi.SECTOR_SIZE != 0) {
            return "data length " + length + " is not a multiple of " + BlkAbi.SECTOR_SIZE;
        }
        if (pieces.size() > config.segMax()) {
            return pieces.size() + " data segments, more than seg_max " + config.segMax();
        }
        return checkRange(sector, length >>> BlkAbi.SECTOR_SHIFT, config);
    }

    /** Why {@code sectors} sectors at {@code sector} (an unsigned u64) do not fit the disk, or null. */
    private static String checkRange(long sector, long sectors, BlkConfig config) {
        long capacity = config.capacity();
        if (Long.compareUnsigned(sector, capacity) > 0 || sectors > capacity - sector) {
            return sectors + " sectors at sector " + Long.toUnsignedString(sector) + " pass the capacity of " + capacity;
        }
        return null;
    }

    private static BlkRequest ranges(int head, long status, boolean discard, List<Descriptor> readable, long length,
            GuestMemory memory, BlkConfig config) {
        int maxRanges = discard ? config.maxDiscardSeg() : config.maxWriteZeroesSeg();
        int maxSectors = discard ? config.maxDiscardSectors() : config.maxWriteZeroesSectors();
        if (length == 0 || length % BlkAbi.RANGE_SIZE != 0) {
            return reject(head, status, "range data of " + length + " bytes, not a multiple of " + BlkAbi.RANGE_SIZE);
        }
        if (length / BlkAbi.RANGE_SIZE > maxRanges) {
            return reject(head, status, length / BlkAbi.RANGE_SIZE + " ranges, more than " + maxRanges);
        }
        List<Range> ranges = new ArrayList<>();
        byte[] raw = new byte[BlkAbi.RANGE_SIZE];
        MemorySegment r = MemorySegment.ofArray(raw);
        for (long off = BlkAbi.HEADER_SIZE; off < BlkAbi.HEADER_SIZE + length; off += BlkAbi.RANGE_SIZE) {
            Buffers.read(memory, readable, off, raw);
            long sector = r.get(ValueLayout.JAVA_LONG_UNALIGNED, BlkAbi.RANGE_SECTOR);
            int sectors = r.get(ValueLayout.JAVA_INT_UNALIGNED, BlkAbi.RANGE_NUM_SECTORS);
            int flags = r.get(ValueLayout.JAVA_INT_UNALIGNED, BlkAbi.RANGE_FLAGS);
            int allowed = discard ? 0 : BlkAbi.WRITE_ZEROES_FLAG_UNMAP;
            if ((flags & ~allowed) != 0) {
                // virtio 1.2 5.2.6.2: unknown flags, or unmap on a discard, are UNSUPP
                return new Rejected(head, BlkAbi.S_UNSUPP, OptionalLong.of(status), "range flags 0x" + Integer.toHexString(flags));
            }
            if (Integer.compareUnsigned(sectors, maxSectors) > 0) {
                return reject(head, status, Integer.toUnsignedString(sectors) + " sectors in a range, more than " + maxSectors);
            }
            String bad = checkRange(sector, Integer.toUnsignedLong(sectors), config);
            if (bad != null) {
                return reject(head, status, bad);
            }
            ranges.add(new Range(sector, sectors, (flags & BlkAbi.WRITE_ZEROES_FLAG_UNMAP) != 0));
        }
        return discard ? new Discard(head, List.copyOf(ranges), status) : new WriteZeroes(head, List.copyOf(ranges), status);
    }
}
