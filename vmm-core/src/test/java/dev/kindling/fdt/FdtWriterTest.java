package dev.kindling.fdt;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.testing.Dtc;
import java.nio.ByteBuffer;
import java.util.List;
import org.junit.jupiter.api.Test;

class FdtWriterTest {
    @Test
    void dtcReadsBackEveryKindOfProperty() throws Exception {
        FdtWriter w = new FdtWriter();
        FdtWriter.Node root = w.beginNode("");
        w.propertyString("model", "kindling");
        w.propertyStrings("compatible", List.of("a,b", "c"));
        w.propertyU32("#address-cells", 2);
        w.propertyU32("#size-cells", 1);
        FdtWriter.Node child = w.beginNode("dev@1000");
        w.propertyU64s("wide", 0x1_2345_6789L, 7);
        w.propertyU32s("cells", 1, 0xffffffff);
        w.property("bytes", new byte[] {1, 2, 3});
        w.propertyEmpty("flag");
        w.propertyU32("#size-cells", 0); // a name already in the strings block
        w.propertyU32s("reg", 0, 0x1000, 0x10);
        FdtWriter.Node grandchild = w.beginNode("inner");
        w.endNode(grandchild);
        w.endNode(child);
        w.endNode(root);
        byte[] blob = w.finish();

        assertThat(Dtc.decompile(blob)).isEqualTo("""
                /dts-v1/;

                / {
                	model = "kindling";
                	compatible = "a,b\\0c";
                	#address-cells = <0x02>;
                	#size-cells = <0x01>;

                	dev@1000 {
                		wide = <0x01 0x23456789 0x00 0x07>;
                		cells = <0x01 0xffffffff>;
                		bytes = [01 02 03];
                		flag;
                		#size-cells = <0x00>;
                		reg = <0x00 0x1000 0x10>;

                		inner {
                		};
                	};
                };
                """);
    }

    @Test
    void headerDescribesTheBlocks() {
        FdtWriter w = new FdtWriter();
        FdtWriter.Node root = w.beginNode("");
        w.propertyU32("a", 1);
        w.propertyU32("bb", 2);
        w.endNode(root);
        byte[] blob = w.finish();
        ByteBuffer b = ByteBuffer.wrap(blob);
        assertThat(b.getInt(0)).isEqualTo(0xd00dfeed);
        assertThat(b.getInt(4)).as("totalsize").isEqualTo(blob.length);
        int struct = b.getInt(8), strings = b.getInt(12), rsvmap = b.getInt(16);
        assertThat(b.getInt(20)).isEqualTo(17);
        assertThat(b.getInt(24)).isEqualTo(16);
        assertThat(rsvmap % 8).isZero();
        assertThat(b.getLong(rsvmap)).isZero();
        assertThat(b.getLong(rsvmap + 8)).isZero();
        assertThat(b.getInt(32)).as("size_dt_strings: \"a\\0bb\\0\"").isEqualTo(5);
        // begin "" (8), two props of 12 + 4 bytes, end node, end
        assertThat(b.getInt(36)).as("size_dt_struct").isEqualTo(8 + 2 * 16 + 4 + 4);
        assertThat(strings).isEqualTo(struct + b.getInt(36));
        assertThat(b.getInt(struct)).isEqualTo(FdtWriter.FDT_BEGIN_NODE);
        assertThat(b.getInt(strings - 4)).isEqualTo(FdtWriter.FDT_END);
    }

    @Test
    void misuseIsRefusedWithTheReason() {
        FdtWriter w = new FdtWriter();
        assertThatThrownBy(() -> w.beginNode("x")).hasMessageContaining("root node's name");
        assertThatThrownBy(() -> w.propertyU32("a", 1)).hasMessageContaining("outside any node");
        FdtWriter.Node root = w.beginNode("");
        assertThatThrownBy(() -> w.beginNode("1abc")).hasMessageContaining("starting with a letter");
        assertThatThrownBy(() -> w.beginNode("a".repeat(32))).hasMessageContaining("1 to 31");
        assertThatThrownBy(() -> w.beginNode("dev@")).hasMessageContaining("unit address");
        assertThatThrownBy(() -> w.propertyU32("bad name", 1)).hasMessageContaining("property name");
        assertThatThrownBy(() -> w.propertyString("s", "a\0b")).hasMessageContaining("NUL");
        w.propertyU32("p", 1);
        assertThatThrownBy(() -> w.propertyU32("p", 2)).hasMessageContaining("twice");
        FdtWriter.Node child = w.beginNode("child@0");
        assertThatThrownBy(() -> w.endNode(root)).hasMessageContaining("innermost");
        assertThatThrownBy(w::finish).hasMessageContaining("still open");
        w.endNode(child);
        assertThatThrownBy(() -> w.propertyU32("q", 1)).hasMessageContaining("after a child node");
        w.endNode(root);
        assertThatThrownBy(() -> w.beginNode("")).hasMessageContaining("already closed");
        w.finish();
        assertThatThrownBy(w::finish).hasMessageContaining("finished");
        assertThatThrownBy(() -> new FdtWriter().finish()).hasMessageContaining("no root");
    }
}
