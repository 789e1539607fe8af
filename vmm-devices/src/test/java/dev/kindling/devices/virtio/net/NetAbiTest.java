package dev.kindling.devices.virtio.net;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.VirtioIds;
import dev.kindling.testing.CProbe;
import dev.kindling.testing.Require;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** The virtio-net header, configuration space and constants against {@code linux/virtio_net.h}: gcc prints them. */
class NetAbiTest {
    @Test
    void layoutsAndConstantsMatchTheHeader() throws Exception {
        Require.that(Require.onPath("gcc"), "gcc is not installed: needed for the header check");
        Map<String, Long> constants = new LinkedHashMap<>();
        Map<String, Long> features = new LinkedHashMap<>();
        features.put("VIRTIO_NET_F_CSUM", VirtioNet.CSUM);
        features.put("VIRTIO_NET_F_GUEST_CSUM", VirtioNet.GUEST_CSUM);
        features.put("VIRTIO_NET_F_MAC", VirtioNet.MAC);
        features.put("VIRTIO_NET_F_GUEST_TSO4", VirtioNet.GUEST_TSO4);
        features.put("VIRTIO_NET_F_GUEST_TSO6", VirtioNet.GUEST_TSO6);
        features.put("VIRTIO_NET_F_GUEST_ECN", VirtioNet.GUEST_ECN);
        features.put("VIRTIO_NET_F_GUEST_UFO", VirtioNet.GUEST_UFO);
        features.put("VIRTIO_NET_F_HOST_TSO4", VirtioNet.HOST_TSO4);
        features.put("VIRTIO_NET_F_HOST_TSO6", VirtioNet.HOST_TSO6);
        features.put("VIRTIO_NET_F_HOST_ECN", VirtioNet.HOST_ECN);
        features.put("VIRTIO_NET_F_HOST_UFO", VirtioNet.HOST_UFO);
        features.put("VIRTIO_NET_F_MRG_RXBUF", VirtioNet.MRG_RXBUF);
        features.put("VIRTIO_NET_F_STATUS", VirtioNet.STATUS);
        features.forEach((name, mask) -> {
            assertThat(Long.bitCount(mask)).as(name).isOne();
            constants.put(name, (long) Long.numberOfTrailingZeros(mask));
        });
        constants.put("VIRTIO_NET_HDR_F_NEEDS_CSUM", (long) NetAbi.HDR_F_NEEDS_CSUM);
        constants.put("VIRTIO_NET_HDR_F_DATA_VALID", (long) NetAbi.HDR_F_DATA_VALID);
        constants.put("VIRTIO_NET_HDR_F_RSC_INFO", (long) NetAbi.HDR_F_RSC_INFO);
        constants.put("VIRTIO_NET_HDR_GSO_NONE", (long) NetAbi.GSO_NONE);
        constants.put("VIRTIO_NET_HDR_GSO_TCPV4", (long) NetAbi.GSO_TCPV4);
        constants.put("VIRTIO_NET_HDR_GSO_UDP", (long) NetAbi.GSO_UDP);
        constants.put("VIRTIO_NET_HDR_GSO_TCPV6", (long) NetAbi.GSO_TCPV6);
        constants.put("VIRTIO_NET_HDR_GSO_ECN", (long) NetAbi.GSO_ECN);
        constants.put("VIRTIO_NET_S_LINK_UP", (long) NetAbi.S_LINK_UP);
        constants.put("VIRTIO_ID_NET", (long) VirtioIds.NET);

        StringBuilder c = new StringBuilder("""
                #include <linux/virtio_ids.h>
                #include <linux/virtio_net.h>
                #include <stddef.h>
                #include <stdio.h>
                int main(void) {
                """);
        Map<String, Long> expected = new TreeMap<>();
        c.append("    printf(\"virtio_net_hdr_v1 %zu\\n\", sizeof(struct virtio_net_hdr_v1));\n");
        expected.put("virtio_net_hdr_v1", NetAbi.HEADER.byteSize());
        expected.put("VNET_HEADER_SIZE", (long) VirtioNet.VNET_HEADER_SIZE);
        c.append("    printf(\"VNET_HEADER_SIZE %zu\\n\", sizeof(struct virtio_net_hdr_v1));\n");
        fields(c, expected, "virtio_net_hdr_v1", NetAbi.HEADER);
        // the header's config goes on past the fields this device offers: ours ends where mtu begins
        c.append("    printf(\"virtio_net_config.end %zu\\n\", offsetof(struct virtio_net_config, mtu));\n");
        expected.put("virtio_net_config.end", NetAbi.CONFIG.byteSize());
        fields(c, expected, "virtio_net_config", NetAbi.CONFIG);
        constants.forEach((name, value) -> {
            c.append("    printf(\"%s %lld\\n\", \"").append(name).append("\", (long long) ").append(name).append(");\n");
            expected.put(name, value);
        });
        c.append("    return 0;\n}\n");
        Map<String, Long> actual = new TreeMap<>();
        CProbe.printed(Path.of("target", "net-header-check"), "net_layout", c)
                .forEach((name, value) -> actual.put(name, Long.parseLong(value)));
        assertThat(actual).isEqualTo(expected);
        // the offsets the device uses are the layout's
        assertThat(new long[] {NetAbi.HDR_FLAGS, NetAbi.HDR_GSO_TYPE, NetAbi.HDR_HDR_LEN, NetAbi.HDR_GSO_SIZE,
                NetAbi.HDR_CSUM_START, NetAbi.HDR_CSUM_OFFSET, NetAbi.HDR_NUM_BUFFERS})
                .containsExactly(actual.get("virtio_net_hdr_v1.flags"), actual.get("virtio_net_hdr_v1.gso_type"),
                        actual.get("virtio_net_hdr_v1.hdr_len"), actual.get("virtio_net_hdr_v1.gso_size"),
                        actual.get("virtio_net_hdr_v1.csum_start"), actual.get("virtio_net_hdr_v1.csum_offset"),
                        actual.get("virtio_net_hdr_v1.num_buffers"));
    }

    /** offsetof every named member, and the size of each. */
    private static void fields(StringBuilder c, Map<String, Long> expected, String struct, StructLayout layout) {
        for (MemoryLayout m : layout.memberLayouts()) {
            String field = m.name().orElseThrow();
            long offset = layout.byteOffset(MemoryLayout.PathElement.groupElement(field));
            c.append("    printf(\"%s %zu\\n\", \"").append(struct).append('.').append(field)
                    .append("\", offsetof(struct ").append(struct).append(", ").append(field).append("));\n");
            expected.put(struct + "." + field, offset);
            c.append("    printf(\"%s %zu\\n\", \"").append(struct).append('.').append(field)
                    .append(".size\", sizeof(((struct ").append(struct).append(" *) 0)->").append(field).append("));\n");
            expected.put(struct + "." + field + ".size", m.byteSize());
        }
    }
}
