package dev.kindling.devices.virtio.blk;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.testing.CProbe;
import dev.kindling.testing.Require;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * The virtio-blk structures and constants against {@code linux/virtio_blk.h}, and the ioctls and
 * file types {@link DiskImage} uses: gcc prints offsets and values.
 */
class BlkAbiTest {
    @Test
    void layoutsAndConstantsMatchTheHeader() throws Exception {
        Require.that(Require.onPath("gcc"), "gcc is not installed: needed for the header check");
        Map<String, StructLayout> structs = new LinkedHashMap<>();
        structs.put("virtio_blk_outhdr", BlkAbi.OUTHDR);
        structs.put("virtio_blk_discard_write_zeroes", BlkAbi.DISCARD_WRITE_ZEROES);
        structs.put("virtio_blk_config", BlkAbi.CONFIG);
        Map<String, Long> constants = new LinkedHashMap<>();
        constants.put("VIRTIO_BLK_F_SIZE_MAX", (long) BlkAbi.F_SIZE_MAX);
        constants.put("VIRTIO_BLK_F_SEG_MAX", (long) BlkAbi.F_SEG_MAX);
        constants.put("VIRTIO_BLK_F_RO", (long) BlkAbi.F_RO);
        constants.put("VIRTIO_BLK_F_BLK_SIZE", (long) BlkAbi.F_BLK_SIZE);
        constants.put("VIRTIO_BLK_F_FLUSH", (long) BlkAbi.F_FLUSH);
        constants.put("VIRTIO_BLK_F_DISCARD", (long) BlkAbi.F_DISCARD);
        constants.put("VIRTIO_BLK_F_WRITE_ZEROES", (long) BlkAbi.F_WRITE_ZEROES);
        constants.put("VIRTIO_BLK_T_IN", (long) BlkAbi.T_IN);
        constants.put("VIRTIO_BLK_T_OUT", (long) BlkAbi.T_OUT);
        constants.put("VIRTIO_BLK_T_FLUSH", (long) BlkAbi.T_FLUSH);
        constants.put("VIRTIO_BLK_T_GET_ID", (long) BlkAbi.T_GET_ID);
        constants.put("VIRTIO_BLK_T_DISCARD", (long) BlkAbi.T_DISCARD);
        constants.put("VIRTIO_BLK_T_WRITE_ZEROES", (long) BlkAbi.T_WRITE_ZEROES);
        constants.put("VIRTIO_BLK_S_OK", (long) BlkAbi.S_OK);
        constants.put("VIRTIO_BLK_S_IOERR", (long) BlkAbi.S_IOERR);
        constants.put("VIRTIO_BLK_S_UNSUPP", (long) BlkAbi.S_UNSUPP);
        constants.put("VIRTIO_BLK_ID_BYTES", (long) BlkAbi.ID_BYTES);
        constants.put("VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP", (long) BlkAbi.WRITE_ZEROES_FLAG_UNMAP);
        // what DiskImage asks of the host
        constants.put("BLKSSZGET", DiskImage.BLKSSZGET.number());
        constants.put("BLKROGET", DiskImage.BLKROGET.number());
        constants.put("S_IFREG", (long) DiskImage.S_IFREG);
        constants.put("S_IFDIR", (long) DiskImage.S_IFDIR);

        StringBuilder c = new StringBuilder("""
                #include <linux/fs.h>
                #include <linux/virtio_blk.h>
                #include <sys/stat.h>
                #include <stddef.h>
                #include <stdio.h>
                int main(void) {
                """);
        Map<String, Long> expected = new TreeMap<>();
        structs.forEach((name, layout) -> {
            if (name.equals("virtio_blk_config")) {
                // the header's struct goes on past the fields this device offers: ours ends where they begin
                c.append("    printf(\"virtio_blk_config.end %zu\\n\", offsetof(struct virtio_blk_config, max_secure_erase_sectors));\n");
                expected.put("virtio_blk_config.end", layout.byteSize());
            } else {
                c.append("    printf(\"%s %zu\\n\", \"").append(name).append("\", sizeof(struct ").append(name).append("));\n");
                expected.put(name, layout.byteSize());
            }
            fields(c, expected, name, "", layout, 0);
        });
        constants.forEach((name, value) -> {
            c.append("    printf(\"%s %lld\\n\", \"").append(name).append("\", (long long) ").append(name).append(");\n");
            expected.put(name, value);
        });
        c.append("    return 0;\n}\n");
        Map<String, Long> actual = new TreeMap<>();
        CProbe.printed(Path.of("target", "blk-header-check"), "blk_layout", c)
                .forEach((name, value) -> actual.put(name, Long.parseLong(value)));
        assertThat(actual).isEqualTo(expected);
    }

    /** offsetof every named member, nested groups by their dotted path. */
    private static void fields(StringBuilder c, Map<String, Long> expected, String struct, String prefix, GroupLayout layout,
            long base) {
        for (MemoryLayout m : layout.memberLayouts()) {
            if (m.name().isEmpty()) {
                continue;
            }
            String field = prefix + m.name().get();
            long offset = base + layout.byteOffset(MemoryLayout.PathElement.groupElement(m.name().get()));
            c.append("    printf(\"%s %zu\\n\", \"").append(struct).append('.').append(field)
                    .append("\", offsetof(struct ").append(struct).append(", ").append(field).append("));\n");
            expected.put(struct + "." + field, offset);
            if (m instanceof GroupLayout g) {
                fields(c, expected, struct, field + ".", g, offset);
            }
        }
    }
}
