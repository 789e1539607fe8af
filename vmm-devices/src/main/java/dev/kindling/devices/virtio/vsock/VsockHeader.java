package dev.kindling.devices.virtio.vsock;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The virtio-vsock ABI (virtio 1.2 section 5.10, {@code linux/virtio_vsock.h}): the packet header
 * every rx and tx buffer starts with, the event and the configuration space, with the op, type and
 * flag values; checked against the header by a test. Packed and little-endian.
 */
public final class VsockHeader {
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** {@code struct virtio_vsock_hdr}. */
    public static final StructLayout HDR = MemoryLayout.structLayout(
            U64.withName("src_cid"),
            U64.withName("dst_cid"),
            U32.withName("src_port"),
            U32.withName("dst_port"),
            U32.withName("len"),
            U16.withName("type"),
            U16.withName("op"),
            U32.withName("flags"),
            U32.withName("buf_alloc"),
            U32.withName("fwd_cnt"));
    /** {@code struct virtio_vsock_event}. */
    public static final StructLayout EVENT = MemoryLayout.structLayout(U32.withName("id"));
    /** {@code struct virtio_vsock_config}. */
    public static final StructLayout CONFIG = MemoryLayout.structLayout(U64.withName("guest_cid"));

    public static final int SIZE = (int) HDR.byteSize();
    public static final int EVENT_SIZE = (int) EVENT.byteSize();

    /** Feature bits: stream sockets (virtio 1.2; not in older headers), seqpacket (not offered). */
    public static final int F_STREAM = 0, F_SEQPACKET = 1;

    public static final int TYPE_STREAM = 1, TYPE_SEQPACKET = 2;

    public static final int OP_INVALID = 0, OP_REQUEST = 1, OP_RESPONSE = 2, OP_RST = 3, OP_SHUTDOWN = 4, OP_RW = 5,
            OP_CREDIT_UPDATE = 6, OP_CREDIT_REQUEST = 7;

    /** SHUTDOWN flags: the sender will receive no more, send no more. */
    public static final int SHUTDOWN_RCV = 1, SHUTDOWN_SEND = 2;

    public static final int EVENT_TRANSPORT_RESET = 0;

    static final long SRC_CID = offset(HDR, "src_cid"), DST_CID = offset(HDR, "dst_cid"),
            SRC_PORT = offset(HDR, "src_port"), DST_PORT = offset(HDR, "dst_port"), LEN = offset(HDR, "len"),
            TYPE = offset(HDR, "type"), OP = offset(HDR, "op"), FLAGS = offset(HDR, "flags"),
            BUF_ALLOC = offset(HDR, "buf_alloc"), FWD_CNT = offset(HDR, "fwd_cnt");
    static final long EVENT_ID = offset(EVENT, "id");

    private VsockHeader() {}

    public static long srcCid(MemorySegment h) {
        return h.get(U64, SRC_CID);
    }

    public static long dstCid(MemorySegment h) {
        return h.get(U64, DST_CID);
    }

    public static int srcPort(MemorySegment h) {
        return h.get(U32, SRC_PORT);
    }

    public static int dstPort(MemorySegment h) {
        return h.get(U32, DST_PORT);
    }

    /** Payload bytes after the header (unsigned). */
    public static long len(MemorySegment h) {
        return Integer.toUnsignedLong(h.get(U32, LEN));
    }

    public static int type(MemorySegment h) {
        return Short.toUnsignedInt(h.get(U16, TYPE));
    }

    public static int op(MemorySegment h) {
        return Short.toUnsignedInt(h.get(U16, OP));
    }

    public static int flags(MemorySegment h) {
        return h.get(U32, FLAGS);
    }

    public static int bufAlloc(MemorySegment h) {
        return h.get(U32, BUF_ALLOC);
    }

    public static int fwdCnt(MemorySegment h) {
        return h.get(U32, FWD_CNT);
    }

    /** Writes a whole header into {@code h}. */
    public static void write(MemorySegment h, long srcCid, long dstCid, int srcPort, int dstPort, int len, int type, int op,
            int flags, int bufAlloc, int fwdCnt) {
        h.set(U64, SRC_CID, srcCid);
        h.set(U64, DST_CID, dstCid);
        h.set(U32, SRC_PORT, srcPort);
        h.set(U32, DST_PORT, dstPort);
        h.set(U32, LEN, len);
        h.set(U16, TYPE, (short) type);
        h.set(U16, OP, (short) op);
        h.set(U32, FLAGS, flags);
        h.set(U32, BUF_ALLOC, bufAlloc);
        h.set(U32, FWD_CNT, fwdCnt);
    }

    public static void writeEvent(MemorySegment e, int id) {
        e.set(U32, EVENT_ID, id);
    }

    private static long offset(StructLayout struct, String field) {
        return struct.byteOffset(MemoryLayout.PathElement.groupElement(field));
    }
}
