package dev.kindling.kvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.memory.MemoryRegion;
import dev.kindling.sys.SyscallException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** System queries and get/set round trips of VM and vCPU state. */
class KvmStateTest {
    private static final System.Logger LOG = System.getLogger(KvmStateTest.class.getName());
    private static final int MSR_IA32_SYSENTER_CS = 0x174, MSR_IA32_SYSENTER_ESP = 0x175, MSR_STAR = 0xc000_0081;

    private Kvm kvm;

    @BeforeEach
    void open() {
        kvm = KvmTestSupport.openKvm();
    }

    @AfterEach
    void close() {
        if (kvm != null) {
            kvm.close();
        }
    }

    @Test
    void systemQueries() {
        assertThat(kvm.apiVersion()).isEqualTo(12);
        assertThat(kvm.vcpuMmapSize()).isGreaterThanOrEqualTo(4096).isEqualTo(kvm.vcpuMmapSize() / 4096 * 4096);
        assertThat(kvm.recommendedVcpus()).isPositive();
        assertThat(kvm.maxVcpus()).isGreaterThanOrEqualTo(kvm.recommendedVcpus());
        for (Capability cap : List.of(Capability.USER_MEMORY, Capability.IMMEDIATE_EXIT, Capability.IRQCHIP,
                Capability.IRQFD, Capability.IOEVENTFD, Capability.SET_TSS_ADDR)) {
            assertThat(kvm.hasExtension(cap)).as(cap.macro()).isTrue();
        }
        StringBuilder caps = new StringBuilder();
        for (Capability cap : Capability.values()) {
            caps.append(cap.name()).append('=').append(kvm.checkExtension(cap)).append(' ');
        }
        LOG.log(System.Logger.Level.INFO, "KVM capabilities: {0}", caps);

        List<CpuidEntry> cpuid = kvm.supportedCpuid();
        assertThat(cpuid).isNotEmpty().anyMatch(e -> e.function() == 0).anyMatch(e -> e.function() == 0x8000_0000);
        int[] msrs = kvm.msrIndexList();
        assertThat(msrs).contains(MSR_IA32_SYSENTER_CS, MSR_STAR);
        LOG.log(System.Logger.Level.INFO, "{0} CPUID leaves, {1} MSRs, vcpu mmap {2} bytes",
                cpuid.size(), msrs.length, kvm.vcpuMmapSize());
    }

    @Test
    void requireExtensionNamesWhatIsMissing() {
        kvm.requireExtension(Capability.USER_MEMORY);
        // XEN-style or architecture-foreign capabilities are absent on x86; use one KVM cannot have here.
        Capability missing = Arrays.stream(Capability.values()).filter(c -> !kvm.hasExtension(c)).findFirst().orElse(null);
        if (missing != null) {
            assertThatThrownBy(() -> kvm.requireExtension(missing))
                    .isInstanceOf(UnsupportedOperationException.class)
                    .hasMessage("/dev/kvm lacks " + missing.macro() + " (" + missing.number() + ")");
        }
    }

    @Test
    void registerRoundTrips() {
        try (Vm vm = kvm.createVm(); Vcpu vcpu = vm.createVcpu(0)) {
            Regs regs = new Regs(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0x1234, 0x202);
            vcpu.setRegs(regs);
            assertThat(vcpu.getRegs()).isEqualTo(regs);

            Sregs sregs = vcpu.getSregs();
            assertThat(sregs.cs().selector()).isEqualTo(0xf000); // reset state
            Segment data = sregs.ds().withBase(0x10000).withSelector(0x1000);
            Sregs changed = sregs.withCs(sregs.cs().withBase(0).withSelector(0)).withDataSegments(data)
                    .withGdt(new DescriptorTable(0x500, 0x1f)).withIdt(new DescriptorTable(0x520, 0xff));
            vcpu.setSregs(changed);
            Sregs back = vcpu.getSregs();
            assertThat(back.cs().base()).isZero();
            assertThat(back.ds()).isEqualTo(data);
            assertThat(back.ss()).isEqualTo(data);
            assertThat(back.gdt()).isEqualTo(new DescriptorTable(0x500, 0x1f));
            assertThat(back.idt()).isEqualTo(new DescriptorTable(0x520, 0xff));
            assertThat(back.cr0()).isEqualTo(changed.cr0());
            assertThat(back.interruptBitmap()).containsExactly(0, 0, 0, 0);

            byte[] xmm = new byte[Fpu.XMM_BYTES];
            xmm[0] = 0x11;
            xmm[255] = 0x22;
            Fpu fpu = new Fpu(new byte[Fpu.FPR_BYTES], 0x37f, 0, 0, 0, 0, 0, xmm, 0x1f80);
            vcpu.setFpu(fpu);
            assertThat(vcpu.getFpu().xmm()).isEqualTo(xmm);
            assertThat(vcpu.getFpu().fcw()).isEqualTo(0x37f);
            // MXCSR is not asserted: this host's KVM reads it back as 0 (a C program sees the same).

            vcpu.setMsrs(List.of(new Msr(MSR_IA32_SYSENTER_CS, 0x10), new Msr(MSR_IA32_SYSENTER_ESP, 0x8000)));
            assertThat(vcpu.getMsrs(MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP))
                    .containsExactly(new Msr(MSR_IA32_SYSENTER_CS, 0x10), new Msr(MSR_IA32_SYSENTER_ESP, 0x8000));

            assertThat(vcpu.getMpState()).isEqualTo(MpState.RUNNABLE);
        }
    }

    @Test
    void cpuidIsSetAndReadBack() {
        try (Vm vm = kvm.createVm(); Vcpu vcpu = vm.createVcpu(0)) {
            List<CpuidEntry> entries = new ArrayList<>(kvm.supportedCpuid());
            vcpu.setCpuid2(entries);
            assertThat(vcpu.getCpuid2()).hasSameSizeAs(entries);
            // CPUID.1:EBX[31:24] is the initial APIC ID; VMMs patch it per vCPU.
            assertThat(vcpu.getCpuid2()).anyMatch(e -> e.function() == 1);
        }
    }

    @Test
    void lapicAndMpStateWithInKernelIrqchip() {
        try (Vm vm = kvm.createVm()) {
            vm.createIrqchip();
            try (Vcpu vcpu = vm.createVcpu(0)) {
                LapicState lapic = vcpu.getLapic();
                assertThat(lapic.toBytes()).hasSize(1024);
                LapicState set = lapic.withDeliveryMode(LapicState.LVT_LINT0, LapicState.DELIVERY_EXTINT)
                        .withDeliveryMode(LapicState.LVT_LINT1, LapicState.DELIVERY_NMI);
                vcpu.setLapic(set);
                LapicState back = vcpu.getLapic();
                assertThat((back.register(LapicState.LVT_LINT0) >> 8) & 7).isEqualTo(LapicState.DELIVERY_EXTINT);
                assertThat((back.register(LapicState.LVT_LINT1) >> 8) & 7).isEqualTo(LapicState.DELIVERY_NMI);

                vcpu.setMpState(MpState.HALTED);
                assertThat(vcpu.getMpState()).isEqualTo(MpState.HALTED);
                vcpu.setMpState(MpState.RUNNABLE);
            }
            vm.irqLine(4, true);
            vm.irqLine(4, false);
            assertThat(vm.signalMsi(0xfee0_0000L, 0x30)).isGreaterThanOrEqualTo(0);
        }
    }

    @Test
    void gsiRoutingAndClock() {
        try (Vm vm = kvm.createVm()) {
            vm.createIrqchip();
            List<RoutingEntry> routes = new ArrayList<>();
            for (int pin = 0; pin < 24; pin++) {
                routes.add(new RoutingEntry.Irqchip(pin, KvmConstants.IRQCHIP_IOAPIC, pin));
            }
            for (int pin = 0; pin < 8; pin++) {
                routes.add(new RoutingEntry.Irqchip(pin, KvmConstants.IRQCHIP_PIC_MASTER, pin));
            }
            routes.add(new RoutingEntry.Msi(24, 0xfee0_0000L, 0x41));
            vm.setGsiRouting(routes);
            assertThatThrownBy(() -> vm.setGsiRouting(List.of(new RoutingEntry.Irqchip(0, 9, 0))))
                    .isInstanceOf(SyscallException.class).hasMessageStartingWith("ioctl(KVM_SET_GSI_ROUTING) failed");

            ClockData clock = vm.getClock();
            assertThat(clock.clock()).isNotNegative();
            vm.setClock(ClockData.of(5_000_000_000L));
            assertThat(vm.getClock().clock()).isBetween(5_000_000_000L, 65_000_000_000L);
        }
    }

    @Test
    void splitIrqchipBeforeVcpus() {
        if (!kvm.hasExtension(Capability.SPLIT_IRQCHIP)) {
            Assumptions.abort("KVM_CAP_SPLIT_IRQCHIP not supported");
        }
        try (Vm vm = kvm.createVm()) {
            vm.enableSplitIrqchip(24);
            try (Vcpu vcpu = vm.createVcpu(0)) {
                assertThat(vcpu.getLapic().toBytes()).hasSize(1024);
            }
            vm.setGsiRouting(List.of(new RoutingEntry.Msi(5, 0xfee0_0000L, 0x35)));
            assertThat(vm.signalMsi(0xfee0_0000L, 0x35)).isGreaterThanOrEqualTo(0);
        }
    }

    @Test
    void memorySlotsCanBeReplacedAndRemoved() {
        try (Vm vm = kvm.createVm(); MemoryRegion a = MemoryRegion.anonymous(0, 0x10000);
                MemoryRegion b = MemoryRegion.anonymous(0x100000, 0x10000)) {
            vm.setUserMemoryRegion(0, a);
            vm.setUserMemoryRegion(1, KvmConstants.MEM_LOG_DIRTY_PAGES, b.guestAddress(), b.segment());
            vm.removeUserMemoryRegion(1);
            vm.setUserMemoryRegion(1, b);
            if (kvm.hasExtension(Capability.READONLY_MEM)) {
                vm.removeUserMemoryRegion(0);
                vm.setUserMemoryRegion(0, KvmConstants.MEM_READONLY, a.guestAddress(), a.segment());
            }
        }
    }
}
