package dev.kindling.kvm.platform;

import dev.kindling.kvm.CpuidEntry;
import java.util.ArrayList;
import java.util.List;

/**
 * The CPUID a vCPU gets: KVM's supported list with this vCPU's APIC id and the machine's topology
 * (one package, one thread per core, {@code count} cores), the hypervisor bit, no PMU and no
 * IA32_ARCH_CAPABILITIES (so the guest does not trust host-specific mitigations it cannot see).
 */
final class CpuidSetup {
    private static final int HYPERVISOR = 1 << 31; // leaf 1 ECX
    private static final int HTT = 1 << 28; // leaf 1 EDX
    private static final int ARCH_CAPABILITIES = 1 << 29; // leaf 7.0 EDX
    private static final int LEVEL_SMT = 1, LEVEL_CORE = 2;

    private CpuidSetup() {}

    static List<CpuidEntry> forVcpu(List<CpuidEntry> supported, int apicId, int count) {
        int coreBits = 32 - Integer.numberOfLeadingZeros(Math.max(1, count) - 1);
        List<CpuidEntry> out = new ArrayList<>(supported.size());
        for (CpuidEntry e : supported) {
            switch (e.function()) {
                case 0x1 -> out.add(e
                        .withEbx((e.ebx() & 0xffff) | (count << 16) | (apicId << 24))
                        .withEcx(e.ecx() | HYPERVISOR)
                        .withEdx(count > 1 ? e.edx() | HTT : e.edx() & ~HTT));
                case 0x4 -> {
                    int cacheLevel = (e.eax() >>> 5) & 7;
                    int sharing = cacheLevel >= 3 ? count - 1 : 0;
                    out.add(e.withEax((e.eax() & 0x3fff) | (sharing << 14) | ((count - 1) << 26)));
                }
                case 0x7 -> out.add(e.index() == 0 ? e.withEdx(e.edx() & ~ARCH_CAPABILITIES) : e);
                case 0xa -> out.add(new CpuidEntry(e.function(), e.index(), e.flags(), 0, 0, 0, 0));
                case 0xb -> out.add(topology(e, apicId, count, coreBits));
                case 0x1f -> { } // the legacy 0xb leaf describes the topology; 0x1f would have to agree
                default -> out.add(e);
            }
        }
        return out;
    }

    private static CpuidEntry topology(CpuidEntry e, int apicId, int count, int coreBits) {
        return switch (e.index()) {
            case 0 -> new CpuidEntry(e.function(), 0, e.flags(), 0, 1, LEVEL_SMT << 8, apicId);
            case 1 -> new CpuidEntry(e.function(), 1, e.flags(), coreBits, count, (LEVEL_CORE << 8) | 1, apicId);
            default -> new CpuidEntry(e.function(), e.index(), e.flags(), 0, 0, e.index(), apicId);
        };
    }
}
