package dev.kindling.kvm;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.kindling.sys.CLayouts;
import java.lang.foreign.MemorySegment;

/**
 * One CPUID leaf, {@code struct kvm_cpuid_entry2}: {@code function} is EAX on input, {@code index}
 * ECX on input (meaningful when {@code flags} has {@link #FLAG_SIGNIFICANT_INDEX}).
 */
public record CpuidEntry(int function, int index, int flags, int eax, int ebx, int ecx, int edx) {
    public static final int FLAG_SIGNIFICANT_INDEX = 1;

    static final long SIZE = KvmStructs.KVM_CPUID_ENTRY2.byteSize();
    private static final long FUNCTION = off("function"), INDEX = off("index"), FLAGS = off("flags"),
            EAX = off("eax"), EBX = off("ebx"), ECX = off("ecx"), EDX = off("edx");

    private static long off(String field) {
        return CLayouts.offsetOf(KvmStructs.KVM_CPUID_ENTRY2, field);
    }

    static CpuidEntry read(MemorySegment m, long at) {
        return new CpuidEntry(m.get(JAVA_INT, at + FUNCTION), m.get(JAVA_INT, at + INDEX), m.get(JAVA_INT, at + FLAGS),
                m.get(JAVA_INT, at + EAX), m.get(JAVA_INT, at + EBX), m.get(JAVA_INT, at + ECX), m.get(JAVA_INT, at + EDX));
    }

    void write(MemorySegment m, long at) {
        m.set(JAVA_INT, at + FUNCTION, function);
        m.set(JAVA_INT, at + INDEX, index);
        m.set(JAVA_INT, at + FLAGS, flags);
        m.set(JAVA_INT, at + EAX, eax);
        m.set(JAVA_INT, at + EBX, ebx);
        m.set(JAVA_INT, at + ECX, ecx);
        m.set(JAVA_INT, at + EDX, edx);
    }

    public CpuidEntry withEax(int v) {
        return new CpuidEntry(function, index, flags, v, ebx, ecx, edx);
    }

    public CpuidEntry withEbx(int v) {
        return new CpuidEntry(function, index, flags, eax, v, ecx, edx);
    }

    public CpuidEntry withEcx(int v) {
        return new CpuidEntry(function, index, flags, eax, ebx, v, edx);
    }

    public CpuidEntry withEdx(int v) {
        return new CpuidEntry(function, index, flags, eax, ebx, ecx, v);
    }

    @Override
    public String toString() {
        return String.format("CpuidEntry[0x%x.%d flags=%d eax=%08x ebx=%08x ecx=%08x edx=%08x]",
                function, index, flags, eax, ebx, ecx, edx);
    }
}
