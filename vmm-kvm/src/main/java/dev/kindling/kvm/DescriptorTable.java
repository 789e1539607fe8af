package dev.kindling.kvm;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import dev.kindling.sys.CLayouts;
import java.lang.foreign.MemorySegment;

/** The GDT or IDT register, {@code struct kvm_dtable}; {@code limit} is unsigned 16-bit. */
public record DescriptorTable(long base, int limit) {
    private static final long BASE = CLayouts.offsetOf(KvmStructs.KVM_DTABLE, "base");
    private static final long LIMIT = CLayouts.offsetOf(KvmStructs.KVM_DTABLE, "limit");

    static DescriptorTable read(MemorySegment m, long at) {
        return new DescriptorTable(m.get(JAVA_LONG, at + BASE), Short.toUnsignedInt(m.get(JAVA_SHORT, at + LIMIT)));
    }

    void write(MemorySegment m, long at) {
        m.set(JAVA_LONG, at + BASE, base);
        m.set(JAVA_SHORT, at + LIMIT, (short) limit);
    }
}
