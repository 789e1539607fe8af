package dev.kindling.kvm;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import dev.kindling.sys.CLayouts;
import java.lang.foreign.MemorySegment;

/**
 * A segment register as KVM describes it, {@code struct kvm_segment}. {@code limit} is unsigned 32-bit,
 * {@code selector} unsigned 16-bit, {@code type} the 4-bit descriptor type, {@code dpl} 0-3.
 */
public record Segment(long base, int limit, int selector, int type, boolean present, int dpl,
        boolean db, boolean s, boolean l, boolean g, boolean avl, boolean unusable) {

    private static final long BASE = off("base"), LIMIT = off("limit"), SELECTOR = off("selector"),
            TYPE = off("type"), PRESENT = off("present"), DPL = off("dpl"), DB = off("db"), S = off("s"),
            L = off("l"), G = off("g"), AVL = off("avl"), UNUSABLE = off("unusable");

    private static long off(String field) {
        return CLayouts.offsetOf(KvmStructs.KVM_SEGMENT, field);
    }

    static Segment read(MemorySegment m, long at) {
        return new Segment(m.get(JAVA_LONG, at + BASE), m.get(JAVA_INT, at + LIMIT),
                Short.toUnsignedInt(m.get(JAVA_SHORT, at + SELECTOR)), u8(m, at + TYPE), u8(m, at + PRESENT) != 0,
                u8(m, at + DPL), u8(m, at + DB) != 0, u8(m, at + S) != 0, u8(m, at + L) != 0,
                u8(m, at + G) != 0, u8(m, at + AVL) != 0, u8(m, at + UNUSABLE) != 0);
    }

    void write(MemorySegment m, long at) {
        m.set(JAVA_LONG, at + BASE, base);
        m.set(JAVA_INT, at + LIMIT, limit);
        m.set(JAVA_SHORT, at + SELECTOR, (short) selector);
        m.set(JAVA_BYTE, at + TYPE, (byte) type);
        m.set(JAVA_BYTE, at + PRESENT, bit(present));
        m.set(JAVA_BYTE, at + DPL, (byte) dpl);
        m.set(JAVA_BYTE, at + DB, bit(db));
        m.set(JAVA_BYTE, at + S, bit(s));
        m.set(JAVA_BYTE, at + L, bit(l));
        m.set(JAVA_BYTE, at + G, bit(g));
        m.set(JAVA_BYTE, at + AVL, bit(avl));
        m.set(JAVA_BYTE, at + UNUSABLE, bit(unusable));
    }

    private static int u8(MemorySegment m, long at) {
        return Byte.toUnsignedInt(m.get(JAVA_BYTE, at));
    }

    private static byte bit(boolean b) {
        return (byte) (b ? 1 : 0);
    }

    public Segment withBase(long v) {
        return new Segment(v, limit, selector, type, present, dpl, db, s, l, g, avl, unusable);
    }

    public Segment withLimit(int v) {
        return new Segment(base, v, selector, type, present, dpl, db, s, l, g, avl, unusable);
    }

    public Segment withSelector(int v) {
        return new Segment(base, limit, v, type, present, dpl, db, s, l, g, avl, unusable);
    }
}
