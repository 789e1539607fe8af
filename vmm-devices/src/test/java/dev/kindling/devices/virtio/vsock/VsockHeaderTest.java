package dev.kindling.devices.virtio.vsock;

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

/** The virtio-vsock structures and constants against {@code linux/virtio_vsock.h}: gcc prints sizes, offsets and values. */
class VsockHeaderTest {
    @Test
    void layoutsAndConstantsMatchTheHeader() throws Exception {
        Require.that(Require.onPath("gcc"), "gcc is not installed: needed for the header check");
        Map<String, StructLayout> structs = new LinkedHashMap<>();
        structs.put("virtio_vsock_hdr", VsockHeader.HDR);
        structs.put("virtio_vsock_event", VsockHeader.EVENT);
        structs.put("virtio_vsock_config", VsockHeader.CONFIG);
        Map<String, Long> constants = new LinkedHashMap<>();
        constants.put("VIRTIO_VSOCK_F_SEQPACKET", (long) VsockHeader.F_SEQPACKET);
        constants.put("VIRTIO_VSOCK_TYPE_STREAM", (long) VsockHeader.TYPE_STREAM);
        constants.put("VIRTIO_VSOCK_TYPE_SEQPACKET", (long) VsockHeader.TYPE_SEQPACKET);
        constants.put("VIRTIO_VSOCK_OP_INVALID", (long) VsockHeader.OP_INVALID);
        constants.put("VIRTIO_VSOCK_OP_REQUEST", (long) VsockHeader.OP_REQUEST);
        constants.put("VIRTIO_VSOCK_OP_RESPONSE", (long) VsockHeader.OP_RESPONSE);
        constants.put("VIRTIO_VSOCK_OP_RST", (long) VsockHeader.OP_RST);
        constants.put("VIRTIO_VSOCK_OP_SHUTDOWN", (long) VsockHeader.OP_SHUTDOWN);
        constants.put("VIRTIO_VSOCK_OP_RW", (long) VsockHeader.OP_RW);
        constants.put("VIRTIO_VSOCK_OP_CREDIT_UPDATE", (long) VsockHeader.OP_CREDIT_UPDATE);
        constants.put("VIRTIO_VSOCK_OP_CREDIT_REQUEST", (long) VsockHeader.OP_CREDIT_REQUEST);
        constants.put("VIRTIO_VSOCK_SHUTDOWN_RCV", (long) VsockHeader.SHUTDOWN_RCV);
        constants.put("VIRTIO_VSOCK_SHUTDOWN_SEND", (long) VsockHeader.SHUTDOWN_SEND);
        constants.put("VIRTIO_VSOCK_EVENT_TRANSPORT_RESET", (long) VsockHeader.EVENT_TRANSPORT_RESET);
        constants.put("VIRTIO_ID_VSOCK", (long) VirtioIds.VSOCK);

        StringBuilder c = new StringBuilder("""
                #include <linux/virtio_vsock.h>
                #include <stddef.h>
                #include <stdio.h>
                int main(void) {
                """);
        Map<String, Long> expected = new TreeMap<>();
        structs.forEach((name, layout) -> {
            c.append("    printf(\"%s %zu\\n\", \"").append(name).append("\", sizeof(struct ").append(name).append("));\n");
            expected.put(name, layout.byteSize());
            for (MemoryLayout m : layout.memberLayouts()) {
                String field = m.name().orElseThrow();
                c.append("    printf(\"%s %zu\\n\", \"").append(name).append('.').append(field)
                        .append("\", offsetof(struct ").append(name).append(", ").append(field).append("));\n");
                expected.put(name + "." + field, layout.byteOffset(MemoryLayout.PathElement.groupElement(field)));
                c.append("    printf(\"%s %zu\\n\", \"").append(name).append('.').append(field)
                        .append(".size\", sizeof(((struct ").append(name).append(" *) 0)->").append(field).append("));\n");
                expected.put(name + "." + field + ".size", m.byteSize());
            }
        });
        constants.forEach((name, value) -> {
            c.append("    printf(\"%s %lld\\n\", \"").append(name).append("\", (long long) ").append(name).append(");\n");
            expected.put(name, value);
        });
        c.append("    return 0;\n}\n");
        Map<String, Long> actual = new TreeMap<>();
        CProbe.printed(Path.of("target", "vsock-header-check"), "vsock_layout", c)
                .forEach((name, value) -> actual.put(name, Long.parseLong(value)));
        assertThat(actual).isEqualTo(expected);
        assertThat(VsockHeader.SIZE).isEqualTo(44);
    }
}
