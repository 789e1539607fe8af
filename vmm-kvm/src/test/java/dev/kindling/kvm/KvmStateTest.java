package dev.kindling.kvm;

import static dev.kindling.kvm.KvmTestSupport.bytes;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.memory.MemoryRegion;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.SyscallException;
import dev.kindling.testing.Require;
import java.io.ByteArrayOutputStream;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * System queries, get/set round trips of VM and vCPU state (each set value differs from the one KVM
 * had), and what memory slots and interrupt injection do, observed by hand-assembled real-mode guests.
 */
@Timeout(120)
@SuppressWarnings("try") // guest RAM is held open by try-with-resources, unreferenced
class KvmStateTest {
    private static final System.Logger LOG = System.getLogger(KvmStateTest.class.getName());
    private static final int MSR_IA32_SYSENTER_CS = 0x174, MSR_IA32_SYSENTER_ESP = 0x175, MSR_STAR = 0xc000_0081;
    /** How long a guest waiting for an interrupt may wait before the test kicks it out and fails. */
    private static final long GUEST_WAIT_SECONDS = 20;

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
        // x86 KVM answers both: the wrappers must report them, not their fallbacks
        assertThat(kvm.checkExtension(Capability.NR_VCPUS)).isPositive();
        assertThat(kvm.recommendedVcpus()).isEqualTo(kvm.checkExtension(Capability.NR_VCPUS));
        assertThat(kvm.checkExtension(Capability.MAX_VCPUS)).isGreaterThanOrEqualTo(kvm.recommendedVcpus());
        assertThat(kvm.maxVcpus()).isEqualTo(kvm.checkExtension(Capability.MAX_VCPUS));
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
        CpuidEntry leaf0 = cpuid.stream().filter(e -> e.function() == 0).findFirst().orElseThrow();
        // every basic leaf up to the maximum that leaf 0 announces is listed
        for (int f = 1; f <= Math.min(leaf0.eax(), 0xd); f++) {
            int function = f;
            assertThat(cpuid).as("leaf 0x%x", f).anyMatch(e -> e.function() == function);
        }
        int[] msrs = kvm.msrIndexList();
        assertThat(msrs).contains(MSR_IA32_SYSENTER_CS, MSR_STAR);
        LOG.log(System.Logger.Level.INFO, "{0} CPUID leaves, {1} MSRs, vcpu mmap {2} bytes",
                cpuid.size(), msrs.length, kvm.vcpuMmapSize());
    }

    @Test
    void requireExtensionAgreesWithCheckExtension() {
        for (Capability cap : Capability.values()) {
            if (kvm.checkExtension(cap) > 0) {
                kvm.requireExtension(cap);
            } else {
                assertThatThrownBy(() -> kvm.requireExtension(cap)).as(cap.macro())
                        .isInstanceOf(UnsupportedOperationException.class)
                        .hasMessage("/dev/kvm lacks " + cap.macro() + " (" + cap.number() + ")");
            }
        }
    }

    @Test
    void registerRoundTrips() {
        try (Vm vm = kvm.createVm(); Vcpu vcpu = vm.createVcpu(0)) {
            Regs regs = new Regs(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0x1234, 0x202);
            assertThat(vcpu.getRegs()).isNotEqualTo(regs);
            vcpu.setRegs(regs);
            assertThat(vcpu.getRegs()).isEqualTo(regs);

            Sregs sregs = vcpu.getSregs();
            assertThat(sregs.cs().selector()).isEqualTo(0xf000); // reset state
            Segment data = sregs.ds().withBase(0x10000).withSelector(0x1000);
            Sregs changed = sregs.withCs(sregs.cs().withBase(0).withSelector(0)).withDataSegments(data)
                    .withGdt(new DescriptorTable(0x500, 0x1f)).withIdt(new DescriptorTable(0x520, 0xff))
                    .withCr0(0x30).withCr3(0x9000); // ET | NE, without the reset state's CD and NW
            assertThat(sregs.cr0()).isNotEqualTo(changed.cr0());
            assertThat(sregs.ds()).isNotEqualTo(data);
            vcpu.setSregs(changed);
            assertThat(vcpu.getSregs()).isEqualTo(changed);

            byte[] fpr = new byte[Fpu.FPR_BYTES];
            byte[] xmm = new byte[Fpu.XMM_BYTES];
            for (int i = 0; i < 8; i++) {
                fpr[16 * i] = (byte) (0x10 + i); // the 80-bit registers sit in 16-byte slots
                fpr[16 * i + 9] = (byte) (0x40 + i);
            }
            xmm[0] = 0x11;
            xmm[255] = 0x22;
            Fpu fpu = new Fpu(fpr, 0x27f, 0x3800, 0xff, 0, 0, 0, xmm, 0x1f80);
            Fpu before = vcpu.getFpu();
            assertThat(before.fcw()).isNotEqualTo(fpu.fcw());
            assertThat(before.fsw()).isNotEqualTo(fpu.fsw());
            vcpu.setFpu(fpu);
            Fpu back = vcpu.getFpu();
            assertThat(back.fpr()).isEqualTo(fpr);
            assertThat(back.xmm()).isEqualTo(xmm);
            assertThat(back.fcw()).isEqualTo(0x27f);
            assertThat(back.fsw()).isEqualTo(0x3800);
            assertThat(back.ftwx()).isEqualTo(0xff);
            // MXCSR is not asserted: this host's KVM reads it back as 0 (a C program sees the same).

            List<Msr> msrs = List.of(new Msr(MSR_IA32_SYSENTER_CS, 0x10), new Msr(MSR_IA32_SYSENTER_ESP, 0x8000));
            assertThat(vcpu.getMsrs(MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP)).doesNotContainAnyElementsOf(msrs);
            vcpu.setMsrs(msrs);
            assertThat(vcpu.getMsrs(MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP)).containsExactlyElementsOf(msrs);

            assertThat(vcpu.getMpState()).isEqualTo(MpState.RUNNABLE);
        }
    }

    @Test
    void cpuidIsSetAndReadBack() {
        try (Vm vm = kvm.createVm(); Vcpu vcpu = vm.createVcpu(0)) {
            byte[] brand = Arrays.copyOf("Kindling test CPU".getBytes(StandardCharsets.US_ASCII), 48);
            List<CpuidEntry> entries = new ArrayList<>();
            for (CpuidEntry e : kvm.supportedCpuid()) {
                int f = e.function();
                if (f == 1) {
                    e = e.withEbx((e.ebx() & 0x00ff_ffff) | 3 << 24); // initial APIC ID 3
                } else if (f >= 0x8000_0002 && f <= 0x8000_0004) {
                    int at = 16 * (f - 0x8000_0002);
                    e = e.withEax(le32(brand, at)).withEbx(le32(brand, at + 4)).withEcx(le32(brand, at + 8))
                            .withEdx(le32(brand, at + 12));
                }
                entries.add(e);
            }
            assertThat(entries).isNotEqualTo(kvm.supportedCpuid());
            vcpu.setCpuid2(entries);
            List<CpuidEntry> back = vcpu.getCpuid2();
            assertThat(back).hasSameSizeAs(entries);
            // KVM recomputes feature flags of leaves 1 and 7 and the XSAVE sizes of leaf 0xd from the
            // vCPU's state: compare everything else, leaf 1's signature and APIC ID, and leaf 7.0's
            // subleaf count (7.1's eax is feature flags, which some hosts' KVM sets on the way back).
            for (int i = 0; i < entries.size(); i++) {
                CpuidEntry want = entries.get(i), got = back.get(i);
                assertThat(List.of(got.function(), got.index(), got.flags()))
                        .as("entry %d", i).containsExactly(want.function(), want.index(), want.flags());
                switch (want.function()) {
                    case 1 -> assertThat(List.of(got.eax(), got.ebx())).containsExactly(want.eax(), want.ebx());
                    case 7 -> {
                        if (want.index() == 0) {
                            assertThat(got.eax()).isEqualTo(want.eax());
                        }
                    }
                    case 0xd -> { }
                    default -> assertThat(got).isEqualTo(want);
                }
            }
            CpuidEntry leaf1 = back.stream().filter(e -> e.function() == 1).findFirst().orElseThrow();
            assertThat(leaf1.ebx() >>> 24).isEqualTo(3);
            ByteArrayOutputStream name = new ByteArrayOutputStream();
            back.stream().filter(e -> e.function() >= 0x8000_0002 && e.function() <= 0x8000_0004)
                    .forEach(e -> {
                        for (int r : new int[] {e.eax(), e.ebx(), e.ecx(), e.edx()}) {
                            for (int b = 0; b < 4; b++) {
                                name.write(r >>> (8 * b));
                            }
                        }
                    });
            assertThat(name.toByteArray()).isEqualTo(brand);
        }
    }

    private static int le32(byte[] b, int at) {
        return (b[at] & 0xff) | (b[at + 1] & 0xff) << 8 | (b[at + 2] & 0xff) << 16 | (b[at + 3] & 0xff) << 24;
    }

    @Test
    void lapicAndMpStateWithInKernelIrqchip() {
        try (Vm vm = kvm.createVm()) {
            vm.createIrqchip();
            try (Vcpu vcpu = vm.createVcpu(0)) {
                LapicState lapic = vcpu.getLapic();
                LapicState set = lapic.withDeliveryMode(LapicState.LVT_LINT0, LapicState.DELIVERY_NMI)
                        .withDeliveryMode(LapicState.LVT_LINT1, LapicState.DELIVERY_EXTINT)
                        .withRegister(LapicState.TPR, 0x20)
                        .withRegister(LapicState.SPURIOUS, 0x1ff);
                for (int reg : new int[] {LapicState.LVT_LINT0, LapicState.LVT_LINT1, LapicState.TPR, LapicState.SPURIOUS}) {
                    assertThat(lapic.register(reg)).as("register 0x%x", reg).isNotEqualTo(set.register(reg));
                }
                vcpu.setLapic(set);
                LapicState back = vcpu.getLapic();
                assertThat((back.register(LapicState.LVT_LINT0) >> 8) & 7).isEqualTo(LapicState.DELIVERY_NMI);
                assertThat((back.register(LapicState.LVT_LINT1) >> 8) & 7).isEqualTo(LapicState.DELIVERY_EXTINT);
                assertThat(back.register(LapicState.TPR)).isEqualTo(0x20);
                assertThat(back.register(LapicState.SPURIOUS)).isEqualTo(0x1ff);

                assertThat(vcpu.getMpState()).isEqualTo(MpState.RUNNABLE);
                vcpu.setMpState(MpState.HALTED);
                assertThat(vcpu.getMpState()).isEqualTo(MpState.HALTED);
            }
        }
    }

    @Test
    void clockIsSetAndRunsOnFromThere() {
        try (Vm vm = kvm.createVm()) {
            for (long value : new long[] {5_000_000_000L, 3_600_000_000_000L}) {
                long t0 = System.nanoTime();
                vm.setClock(ClockData.of(value));
                long clock = vm.getClock().clock();
                long elapsed = System.nanoTime() - t0;
                // kvmclock advances with the host's clock; 1 ms for rounding between the two clocks
                assertThat(clock - value).as("kvmclock after KVM_SET_CLOCK(%d)", value)
                        .isBetween(0L, elapsed + 1_000_000L);
            }
        }
    }

    // ---- memory slots, seen by a guest

    @Test
    void memorySlotsCanBeReplacedAndRemoved() {
        byte[] code = bytes(
                0xa0, 0x00, 0x80, // mov al, [0x8000]
                0xe6, 0x10,       // out 0x10, al
                0xeb, 0xf9);      // jmp back to the load
        try (Vm vm = kvm.createVm(); MemoryRegion ram = KvmTestSupport.ramWithCode(vm, code);
                MemoryRegion a = MemoryRegion.anonymous(0x8000, 0x1000);
                MemoryRegion b = MemoryRegion.anonymous(0x8000, 0x1000); Vcpu vcpu = vm.createVcpu(0)) {
            a.segment().set(JAVA_BYTE, 0, (byte) 0x11);
            b.segment().set(JAVA_BYTE, 0, (byte) 0x22);
            KvmTestSupport.startRealMode(vcpu, 0, 0);
            vm.setUserMemoryRegion(1, a);
            assertThat(reported(vcpu.run())).isEqualTo(0x11);

            vm.removeUserMemoryRegion(1);
            vm.setUserMemoryRegion(1, b);
            assertThat(reported(vcpu.run())).as("after the slot was replaced").isEqualTo(0x22);

            vm.removeUserMemoryRegion(1);
            VcpuExit.Mmio read = mmio(vcpu.run());
            assertThat(read.isWrite()).isFalse();
            assertThat(read.address()).isEqualTo(0x8000);
            read.complete(0x33);
            assertThat(reported(vcpu.run())).as("with no slot the load is an MMIO read").isEqualTo(0x33);

            vm.setUserMemoryRegion(1, KvmConstants.MEM_LOG_DIRTY_PAGES, a.guestAddress(), a.segment());
            assertThat(reported(vcpu.run())).isEqualTo(0x11);
        }
    }

    @Test
    void guestWritesToAReadOnlySlotExitAsMmioAndReadsSeeTheSlot() {
        kvm.requireExtension(Capability.READONLY_MEM);
        byte[] code = bytes(
                0xa0, 0x00, 0x80,                   // mov al, [0x8000]
                0xe6, 0x10,                         // out 0x10, al
                0xc6, 0x06, 0x00, 0x80, 0x5a,       // mov byte [0x8000], 0x5a
                0xc7, 0x06, 0x02, 0x80, 0x34, 0x12, // mov word [0x8002], 0x1234
                0xa1, 0x02, 0x80,                   // mov ax, [0x8002]
                0xe7, 0x12,                         // out 0x12, ax
                0xa0, 0x00, 0x80,                   // mov al, [0x8000]
                0xe6, 0x10,                         // out 0x10, al
                0xf4);                              // hlt
        try (Vm vm = kvm.createVm(); MemoryRegion ram = KvmTestSupport.ramWithCode(vm, code);
                MemoryRegion rom = MemoryRegion.anonymous(0x8000, 0x1000); Vcpu vcpu = vm.createVcpu(0)) {
            rom.segment().set(JAVA_BYTE, 0, (byte) 0xa5);
            rom.segment().set(JAVA_SHORT, 2, (short) 0x7e81);
            vm.setUserMemoryRegion(1, KvmConstants.MEM_READONLY, rom.guestAddress(), rom.segment());
            KvmTestSupport.startRealMode(vcpu, 0, 0);

            assertThat(reported(vcpu.run())).as("a read of the slot").isEqualTo(0xa5);
            VcpuExit.Mmio byteWrite = mmio(vcpu.run());
            assertThat(byteWrite.isWrite()).isTrue();
            assertThat(byteWrite.address()).isEqualTo(0x8000);
            assertThat(byteWrite.len()).isEqualTo(1);
            assertThat(byteWrite.data()).isEqualTo(0x5a);
            VcpuExit.Mmio wordWrite = mmio(vcpu.run());
            assertThat(wordWrite.isWrite()).isTrue();
            assertThat(wordWrite.address()).isEqualTo(0x8002);
            assertThat(wordWrite.len()).isEqualTo(2);
            assertThat(wordWrite.data()).isEqualTo(0x1234);

            assertThat(reported(vcpu.run(), 0x12)).as("the slot keeps its content").isEqualTo(0x7e81);
            assertThat(reported(vcpu.run())).isEqualTo(0xa5);
            assertThat(vcpu.run()).isEqualTo(VcpuExit.HLT);
            assertThat(rom.segment().get(JAVA_BYTE, 0)).isEqualTo((byte) 0xa5);
            assertThat(rom.segment().get(JAVA_SHORT, 2)).isEqualTo((short) 0x7e81);
        }
    }

    private static VcpuExit.Mmio mmio(VcpuExit exit) {
        assertThat(exit).as("exit").isInstanceOf(VcpuExit.Mmio.class);
        return (VcpuExit.Mmio) exit;
    }

    /** The byte an {@code out 0x10, al} wrote. */
    private static long reported(VcpuExit exit) {
        return reported(exit, 0x10);
    }

    // ---- interrupts, seen by a guest

    @Test
    void msiIsDeliveredToTheGuestOnceItsLapicIsEnabled() {
        try (Vm vm = kvm.createVm()) {
            vm.setTssAddress(0xfffb_d000L);
            vm.setIdentityMapAddress(0xfffb_c000L);
            vm.createIrqchip();
            try (MemoryRegion ram = interruptGuest(vm, new byte[0], 0x30, 0x31); Vcpu vcpu = vm.createVcpu(0)) {
                startInterruptGuest(vcpu);
                assertThat(reported(vcpu.run(), READY)).isEqualTo(READY);

                // a software-disabled LAPIC (SVR bit 8 clear, the reset state) accepts no fixed interrupt
                assertThat(vcpu.getLapic().register(LapicState.SPURIOUS) & 0x100).isZero();
                assertThat(vm.signalMsi(0xfee0_0000L, 0x31)).isZero();
                vcpu.setLapic(vcpu.getLapic().withRegister(LapicState.SPURIOUS, 0x1ff));
                assertThat(vm.signalMsi(0xfee0_0000L, 0x30)).isEqualTo(1);
                assertThat(reported(runWithin(vcpu), HANDLED)).as("vector the guest handled").isEqualTo(0x30);
            }
        }
    }

    @Test
    void irqLineAndGsiRoutesReachTheGuest() {
        byte[] programPic = bytes(
                0xb0, 0x11, 0xe6, 0x20, // ICW1: edge, cascade, ICW4 follows
                0xb0, 0x20, 0xe6, 0x21, // ICW2: vectors 0x20-0x27
                0xb0, 0x04, 0xe6, 0x21, // ICW3: slave on IRQ 2
                0xb0, 0x01, 0xe6, 0x21, // ICW4: 8086 mode
                0xb0, 0xef, 0xe6, 0x21); // OCW1: only IRQ 4 unmasked
        try (Vm vm = kvm.createVm(); EventFd event = EventFd.nonBlocking()) {
            vm.setTssAddress(0xfffb_d000L);
            vm.setIdentityMapAddress(0xfffb_c000L);
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
            vm.registerIrqfd(event, 24);
            try (MemoryRegion ram = interruptGuest(vm, programPic, 0x24, 0x41); Vcpu vcpu = vm.createVcpu(0)) {
                startInterruptGuest(vcpu);
                vcpu.setLapic(vcpu.getLapic().withDeliveryMode(LapicState.LVT_LINT0, LapicState.DELIVERY_EXTINT)
                        .withRegister(LapicState.SPURIOUS, 0x1ff));
                assertThat(reported(vcpu.run(), READY)).isEqualTo(READY);

                vm.irqLine(4, true); // GSI 4 -> PIC pin 4 -> ExtINT through LINT0
                assertThat(reported(runWithin(vcpu), HANDLED)).as("vector of IRQ 4").isEqualTo(0x24);
                vm.irqLine(4, false);

                event.signal(); // GSI 24 -> the MSI route
                assertThat(reported(runWithin(vcpu), HANDLED)).as("vector of GSI 24").isEqualTo(0x41);
            }
            vm.unregisterIrqfd(event, 24);
        }
    }

    @Test
    void splitIrqchipBeforeVcpus() {
        if (!kvm.hasExtension(Capability.SPLIT_IRQCHIP)) {
            Require.unavailable("KVM_CAP_SPLIT_IRQCHIP not supported");
        }
        try (Vm vm = kvm.createVm()) {
            vm.setTssAddress(0xfffb_d000L);
            vm.setIdentityMapAddress(0xfffb_c000L);
            vm.enableSplitIrqchip(24);
            vm.setGsiRouting(List.of(new RoutingEntry.Msi(5, 0xfee0_0000L, 0x45)));
            try (EventFd event = EventFd.nonBlocking(); MemoryRegion ram = interruptGuest(vm, new byte[0], 0x35, 0x45);
                    Vcpu vcpu = vm.createVcpu(0)) {
                vm.registerIrqfd(event, 5);
                startInterruptGuest(vcpu);
                vcpu.setLapic(vcpu.getLapic().withRegister(LapicState.SPURIOUS, 0x1ff));
                assertThat(reported(vcpu.run(), READY)).isEqualTo(READY);

                // MSIs reach the in-kernel LAPIC directly, and through a GSI routed to an MSI
                assertThat(vm.signalMsi(0xfee0_0000L, 0x35)).isEqualTo(1);
                assertThat(reported(runWithin(vcpu), HANDLED)).isEqualTo(0x35);
                // the handler sends no EOI: the second vector must be of a higher priority class
                event.signal();
                assertThat(reported(runWithin(vcpu), HANDLED)).isEqualTo(0x45);
                vm.unregisterIrqfd(event, 5);
            }
        }
    }

    private static final int READY = 0x11, HANDLED = 0x10, UNEXPECTED = 0xff;
    private static final long CATCH_ALL = 0x1800, HANDLERS = 0x1900, STACK_TOP = 0x3ff0;

    /**
     * A real-mode guest in {@link KvmTestSupport#ramWithCode}: runs {@code setup}, writes {@value #READY}
     * to port {@value #READY}, then waits for interrupts in a {@code sti; hlt} loop. The real-mode IVT
     * sends each of {@code vectors} to a handler that writes its vector to port {@value #HANDLED}; every
     * other vector writes 0xee to port {@value #UNEXPECTED}. Handlers return with {@code iret} and send
     * no EOI.
     */
    private static MemoryRegion interruptGuest(Vm vm, byte[] setup, int... vectors) {
        byte[] wait = bytes(0xb0, READY, 0xe6, READY, 0xfb, 0xf4, 0xeb, 0xfc); // mov al; out; sti; hlt; jmp to sti
        byte[] code = Arrays.copyOf(setup, setup.length + wait.length);
        System.arraycopy(wait, 0, code, setup.length, wait.length);
        MemoryRegion ram = KvmTestSupport.ramWithCode(vm, code);
        MemorySegment m = ram.segment();
        m.asSlice(CATCH_ALL).copyFrom(MemorySegment.ofArray(bytes(0xb0, 0xee, 0xe6, UNEXPECTED, 0xcf)));
        for (int v = 0; v < 256; v++) {
            m.set(JAVA_SHORT, 4L * v, (short) CATCH_ALL); // offset; segment 0
            m.set(JAVA_SHORT, 4L * v + 2, (short) 0);
        }
        for (int i = 0; i < vectors.length; i++) {
            long at = HANDLERS + 8L * i;
            m.asSlice(at).copyFrom(MemorySegment.ofArray(bytes(0xb0, vectors[i], 0xe6, HANDLED, 0xcf)));
            m.set(JAVA_SHORT, 4L * vectors[i], (short) at);
        }
        return ram;
    }

    private static void startInterruptGuest(Vcpu vcpu) {
        KvmTestSupport.startRealMode(vcpu, 0, 0);
        vcpu.setRegs(vcpu.getRegs().withRsp(STACK_TOP));
    }

    /** The value an {@code out} to {@code port} wrote, failing on any other exit. */
    private static long reported(VcpuExit exit, int port) {
        assertThat(exit).as("exit").isInstanceOf(VcpuExit.Io.class);
        VcpuExit.Io io = (VcpuExit.Io) exit;
        assertThat(io.isOut()).isTrue();
        assertThat(io.port()).as("port (0x%x: an unexpected vector)", UNEXPECTED).isEqualTo(port);
        return io.value();
    }

    /**
     * Runs a guest that waits in {@code hlt} (inside KVM, with an in-kernel LAPIC) for an interrupt;
     * if none comes within {@link #GUEST_WAIT_SECONDS} the vCPU is kicked and the run returns
     * {@link VcpuExit#INTERRUPTED}.
     */
    private static VcpuExit runWithin(Vcpu vcpu) {
        CountDownLatch returned = new CountDownLatch(1);
        Thread watchdog = Thread.ofPlatform().daemon().name("kick-after-deadline").start(() -> {
            try {
                if (!returned.await(GUEST_WAIT_SECONDS, TimeUnit.SECONDS)) {
                    vcpu.kick();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        try {
            return vcpu.run();
        } finally {
            returned.countDown();
            try {
                watchdog.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
