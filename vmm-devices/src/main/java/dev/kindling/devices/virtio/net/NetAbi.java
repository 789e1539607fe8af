package dev.kindling.devices.virtio.net;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;

/**
 * The virtio-net ABI (virtio 1.2 section 5.1, {@code linux/virtio_net.h}): the header before every
 * frame, the configuration space and the header's flag and GSO values, checked against the header by
 * a test. The feature bits are {@link VirtioNet}'s. Little-endian, as every virtio 1.x field is.
 */
public final class NetAbi {
    /** {@code struct virtio_net_hdr_v1} (the legacy {@code virtio_net_hdr_mrg_rxbuf}, flattened). */
    public static final StructLayout HEADER = MemoryLayout.structLayout(
            ValueLayout.JAVA_BYTE.withName("flags"),
            ValueLayout.JAVA_BYTE.withName("gso_type"),
            ValueLayout.JAVA_SHORT.withName("hdr_len"),
            ValueLayout.JAVA_SHORT.withName("gso_size"),
            ValueLayout.JAVA_SHORT.withName("csum_start"),
            ValueLayout.JAVA_SHORT.withName("csum_offset"),
            ValueLayout.JAVA_SHORT.withName("num_buffers"));

    public static final long HDR_FLAGS = offset(HEADER, "flags"), HDR_GSO_TYPE = offset(HEADER, "gso_type"),
            HDR_HDR_LEN = offset(HEADER, "hdr_len"), HDR_GSO_SIZE = offset(HEADER, "gso_size"),
            HDR_CSUM_START = offset(HEADER, "csum_start"), HDR_CSUM_OFFSET = offset(HEADER, "csum_offset"),
            HDR_NUM_BUFFERS = offset(HEADER, "num_buffers");

    /** Header flags. */
    public static final int HDR_F_NEEDS_CSUM = 1, HDR_F_DATA_VALID = 2, HDR_F_RSC_INFO = 4;

    /** Header GSO types; {@link #GSO_ECN} is or-ed into a TCP one. */
    public static final int GSO_NONE = 0, GSO_TCPV4 = 1, GSO_UDP = 3, GSO_TCPV6 = 4, GSO_ECN = 0x80;

    /** The configuration status bit. */
    public static final int S_LINK_UP = 1;

    /**
     * {@code struct virtio_net_config} up to {@code max_virtqueue_pairs}: the fields this device
     * fills (mtu and the fields after it only exist with features it does not offer).
     */
    public static final StructLayout CONFIG = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(6, ValueLayout.JAVA_BYTE).withName("mac"),
            ValueLayout.JAVA_SHORT.withName("status"),
            ValueLayout.JAVA_SHORT.withName("max_virtqueue_pairs"));

    public static final long CONFIG_MAC = offset(CONFIG, "mac"), CONFIG_STATUS = offset(CONFIG, "status"),
            CONFIG_MAX_VIRTQUEUE_PAIRS = offset(CONFIG, "max_virtqueue_pairs");

    private NetAbi() {}

    private static long offset(StructLayout struct, String field) {
        return struct.byteOffset(MemoryLayout.PathElement.groupElement(field));
    }
}
