package dev.kindling.sys;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.SequenceLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.UnionLayout;
import java.lang.foreign.ValueLayout;

/**
 * Building blocks for kernel struct layouts (x86-64) whose member names are the C names, so that a
 * layout test can check every offset against the header.
 *
 * <p>Conventions: a member whose name starts with {@value #ANONYMOUS_PREFIX} stands for a C anonymous
 * union, whose fields belong to the enclosing struct in C ({@code kvm_run.io.port}); unnamed padding
 * layouts are the compiler's implicit padding; a zero-length sequence is a C flexible array member.
 */
public final class CLayouts {
    /** Name prefix of members that are anonymous unions in C. */
    public static final String ANONYMOUS_PREFIX = "anon_";

    public static final ValueLayout.OfByte U8 = ValueLayout.JAVA_BYTE;
    public static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT;
    public static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT;
    public static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG;

    private CLayouts() {}

    public static StructLayout struct(String name, MemoryLayout... members) {
        return MemoryLayout.structLayout(members).withName(name);
    }

    public static UnionLayout union(String name, MemoryLayout... members) {
        return MemoryLayout.unionLayout(members).withName(name);
    }

    public static MemoryLayout u8(String name) {
        return U8.withName(name);
    }

    public static MemoryLayout u16(String name) {
        return U16.withName(name);
    }

    public static MemoryLayout u32(String name) {
        return U32.withName(name);
    }

    public static MemoryLayout u64(String name) {
        return U64.withName(name);
    }

    public static SequenceLayout array(String name, long count, MemoryLayout element) {
        return MemoryLayout.sequenceLayout(count, element).withName(name);
    }

    /** A C flexible array member: no storage of its own, the entries follow the header. */
    public static SequenceLayout flexible(String name, MemoryLayout element) {
        return array(name, 0, element);
    }

    /** Implicit padding the compiler adds. */
    public static MemoryLayout pad(long bytes) {
        return MemoryLayout.paddingLayout(bytes);
    }

    /** Byte offset of the member at {@code path} (names of nested members, anonymous ones included). */
    public static long offsetOf(MemoryLayout layout, String... path) {
        MemoryLayout.PathElement[] elements = new MemoryLayout.PathElement[path.length];
        for (int i = 0; i < path.length; i++) {
            elements[i] = MemoryLayout.PathElement.groupElement(path[i]);
        }
        return layout.byteOffset(elements);
    }
}
