package dev.kindling.fdt;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes a flattened device tree blob (Devicetree Specification 0.4, chapter 5: version 17,
 * compatible with 16), as rust-vmm's {@code vm-fdt} does: nodes are opened and closed in order, a
 * node's properties come before its children, and {@link #finish()} gives the blob. Names are
 * checked against the specification's character sets; property names are unique in their node.
 */
public final class FdtWriter {
    public static final int MAGIC = 0xd00dfeed;
    public static final int VERSION = 17;
    public static final int LAST_COMPATIBLE_VERSION = 16;
    public static final int HEADER_SIZE = 40;
    static final int FDT_BEGIN_NODE = 0x1, FDT_END_NODE = 0x2, FDT_PROP = 0x3, FDT_END = 0x9;
    /** The specification's limit on a node name without its unit address. */
    public static final int MAX_NODE_NAME = 31;
    public static final int MAX_PROPERTY_NAME = 31;

    /** An open node; {@link #endNode(Node)} closes it. */
    public static final class Node {
        private final int depth;
        private final Set<String> properties = new HashSet<>();
        private boolean hasChildren;

        private Node(int depth) {
            this.depth = depth;
        }
    }

    private final ByteArrayOutputStream struct = new ByteArrayOutputStream();
    private final ByteArrayOutputStream strings = new ByteArrayOutputStream();
    private final Map<String, Integer> stringOffsets = new HashMap<>();
    private final Deque<Node> open = new ArrayDeque<>();
    private boolean rootWritten;
    private boolean finished;

    /** Opens a node: the root (name "") first, then children of the innermost open node. */
    public Node beginNode(String name) {
        checkWritable();
        if (open.isEmpty()) {
            if (rootWritten) {
                throw new IllegalStateException("the root node is already closed");
            }
            if (!name.isEmpty()) {
                throw new IllegalArgumentException("the root node's name is \"\", not \"" + name + "\"");
            }
            rootWritten = true;
        } else {
            checkNodeName(name);
            open.peek().hasChildren = true;
        }
        u32(struct, FDT_BEGIN_NODE);
        padded(struct, nulTerminated(name));
        Node n = new Node(open.size());
        open.push(n);
        return n;
    }

    /** Closes {@code node}, which must be the innermost open one. */
    public void endNode(Node node) {
        checkWritable();
        if (open.peek() != node) {
            throw new IllegalStateException("node at depth " + node.depth + " is not the innermost open node");
        }
        open.pop();
        u32(struct, FDT_END_NODE);
    }

    /** A property of the innermost open node with {@code value} as it is. */
    public void property(String name, byte[] value) {
        checkWritable();
        Node n = open.peek();
        if (n == null) {
            throw new IllegalStateException("property " + name + " outside any node");
        }
        checkPropertyName(name);
        if (n.hasChildren) {
            throw new IllegalStateException("property " + name + " after a child node: properties come first");
        }
        if (!n.properties.add(name)) {
            throw new IllegalArgumentException("property " + name + " twice in one node");
        }
        u32(struct, FDT_PROP);
        u32(struct, value.length);
        u32(struct, stringOffset(name));
        padded(struct, value);
    }

    /** A property without a value ({@code interrupt-controller;}). */
    public void propertyEmpty(String name) {
        property(name, new byte[0]);
    }

    public void propertyString(String name, String value) {
        property(name, nulTerminated(value));
    }

    /** A string list ({@code compatible = "a", "b";}). */
    public void propertyStrings(String name, List<String> values) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (String v : values) {
            b.writeBytes(nulTerminated(v));
        }
        property(name, b.toByteArray());
    }

    public void propertyU32(String name, int value) {
        propertyU32s(name, value);
    }

    /** Cells, big-endian ({@code reg = <0 0xb0000000 0 0x1000>;}). */
    public void propertyU32s(String name, int... values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.BIG_ENDIAN);
        for (int v : values) {
            b.putInt(v);
        }
        property(name, b.array());
    }

    /** 64-bit values, each as two cells, high first. */
    public void propertyU64s(String name, long... values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 8).order(ByteOrder.BIG_ENDIAN);
        for (long v : values) {
            b.putLong(v);
        }
        property(name, b.array());
    }

    /** The blob: header, an empty memory reservation block, the structure block and the strings. */
    public byte[] finish() {
        checkWritable();
        if (!rootWritten) {
            throw new IllegalStateException("no root node");
        }
        if (!open.isEmpty()) {
            throw new IllegalStateException(open.size() + " node(s) still open");
        }
        finished = true;
        u32(struct, FDT_END);
        int rsvmap = HEADER_SIZE; // 8-byte aligned already
        int structAt = rsvmap + 16;
        int stringsAt = structAt + struct.size();
        int total = stringsAt + strings.size();
        ByteBuffer b = ByteBuffer.allocate(total).order(ByteOrder.BIG_ENDIAN);
        b.putInt(MAGIC).putInt(total).putInt(structAt).putInt(stringsAt).putInt(rsvmap)
                .putInt(VERSION).putInt(LAST_COMPATIBLE_VERSION).putInt(0 /* boot_cpuid_phys */)
                .putInt(strings.size()).putInt(struct.size());
        b.putLong(0).putLong(0); // the reservation block's terminating entry
        b.put(struct.toByteArray()).put(strings.toByteArray());
        return b.array();
    }

    private void checkWritable() {
        if (finished) {
            throw new IllegalStateException("the blob is finished");
        }
    }

    private int stringOffset(String name) {
        return stringOffsets.computeIfAbsent(name, k -> {
            int at = strings.size();
            strings.writeBytes(nulTerminated(k));
            return at;
        });
    }

    /** node-name[@unit-address], the specification's table 2.1 for the name, its unit-address characters after '@'. */
    static void checkNodeName(String name) {
        int at = name.indexOf('@');
        String base = at < 0 ? name : name.substring(0, at);
        if (base.isEmpty() || base.length() > MAX_NODE_NAME || !Character.isLetter(base.charAt(0))
                || !base.chars().allMatch(c -> isAsciiAlnum(c) || ",._+-".indexOf(c) >= 0)) {
            throw new IllegalArgumentException("node name \"" + name + "\": 1 to " + MAX_NODE_NAME
                    + " of [A-Za-z0-9,._+-], starting with a letter, then @unit-address");
        }
        if (at >= 0) {
            String unit = name.substring(at + 1);
            if (unit.isEmpty() || !unit.chars().allMatch(c -> isAsciiAlnum(c) || ",._+-".indexOf(c) >= 0)) {
                throw new IllegalArgumentException("node name \"" + name + "\": bad unit address");
            }
        }
    }

    /** The specification's table 2.2. */
    static void checkPropertyName(String name) {
        if (name.isEmpty() || name.length() > MAX_PROPERTY_NAME
                || !name.chars().allMatch(c -> isAsciiAlnum(c) || ",._+?#-".indexOf(c) >= 0)) {
            throw new IllegalArgumentException("property name \"" + name + "\": 1 to " + MAX_PROPERTY_NAME
                    + " of [A-Za-z0-9,._+?#-]");
        }
    }

    private static boolean isAsciiAlnum(int c) {
        return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z';
    }

    private static byte[] nulTerminated(String s) {
        if (s.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("string with a NUL: " + s.replace('\0', '?'));
        }
        byte[] ascii = s.getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[ascii.length + 1];
        System.arraycopy(ascii, 0, out, 0, ascii.length);
        return out;
    }

    private static void u32(ByteArrayOutputStream out, int v) {
        out.write(v >>> 24);
        out.write(v >>> 16);
        out.write(v >>> 8);
        out.write(v);
    }

    private static void padded(ByteArrayOutputStream out, byte[] bytes) {
        out.writeBytes(bytes);
        for (int i = bytes.length; i % 4 != 0; i++) {
            out.write(0);
        }
    }
}
