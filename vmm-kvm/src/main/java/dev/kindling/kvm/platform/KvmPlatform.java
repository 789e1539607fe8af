package dev.kindling.kvm.platform;

import dev.kindling.bus.AddressSpace;
import dev.kindling.bus.Bus;
import dev.kindling.device.IoEvent;
import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.kvm.Capability;
import dev.kindling.kvm.ClockData;
import dev.kindling.kvm.CpuidEntry;
import dev.kindling.kvm.Kvm;
import dev.kindling.kvm.KvmConstants;
import dev.kindling.kvm.LapicState;
import dev.kindling.kvm.Msr;
import dev.kindling.kvm.Vcpu;
import dev.kindling.kvm.Vm;
import dev.kindling.machine.ExitDispatch;
import dev.kindling.machine.Platform;
import dev.kindling.machine.VirtualCpu;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.memory.MemorySlot;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.SyscallException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalLong;
import java.util.function.IntFunction;

/** A {@link Platform} on KVM: one VM, its memory slots, vCPUs, interrupt controllers and eventfds. */
public final class KvmPlatform implements Platform {
    /** Where KVM puts the TSS and identity-map pages it needs on Intel: just below the BIOS area. */
    public static final long TSS_ADDRESS = 0xfffbd000L;
    public static final long IDENTITY_MAP_ADDRESS = 0xfffbc000L;
    public static final int IOAPIC_PINS = 24;

    private static final int MSR_IA32_TSC = 0x10, MSR_IA32_ARCH_CAPABILITIES = 0x10a,
            MSR_IA32_SYSENTER_CS = 0x174, MSR_IA32_SYSENTER_ESP = 0x175, MSR_IA32_SYSENTER_EIP = 0x176,
            MSR_IA32_MISC_ENABLE = 0x1a0, MSR_MTRR_DEF_TYPE = 0x2ff, MSR_STAR = 0xc0000081,
            MSR_LSTAR = 0xc0000082, MSR_CSTAR = 0xc0000083, MSR_SYSCALL_MASK = 0xc0000084,
            MSR_KERNEL_GS_BASE = 0xc0000102;
    private static final long MISC_ENABLE_FAST_STRING = 1, MTRR_ENABLE = 1 << 11, MTRR_TYPE_WB = 6;

    /**
     * How the VM is made: where the interrupt controllers live, and whether KVM models the PIT. There
     * is no default: the machine assembly ({@code MicrovmBuilder}, SPLIT unless told otherwise)
     * chooses, since the choice decides which device models it must add.
     */
    public record Config(IrqchipMode irqchip, boolean kernelPit) {
        public Config {
            if (kernelPit && irqchip != IrqchipMode.KERNEL) {
                throw new IllegalArgumentException("KVM's PIT needs KVM's PIC and IOAPIC (irqchip KERNEL)");
            }
        }
    }

    private final Kvm kvm;
    private final Vm vm;
    private final Config config;
    private final List<CpuidEntry> supportedCpuid;
    private final boolean archCapabilitiesMsr;
    private final int[] msrIndexList;
    private final List<KvmVirtualCpu> vcpus = new ArrayList<>();
    /** Closed after the VM: KVM drops the registrations with the VM. */
    private final List<KvmIoEvent> ioEvents = new ArrayList<>();
    private final MemorySlots slots;
    private final GsiRouting routing;
    private final KvmInterrupts interrupts;
    /** Shared by the vCPUs, so that a failing device is logged once per VM, not once per vCPU. */
    private ExitDispatch exits;
    private boolean vmOpen = true;

    private KvmPlatform(Kvm kvm, Vm vm, Config config) {
        this.kvm = kvm;
        this.vm = vm;
        this.config = config;
        this.supportedCpuid = kvm.supportedCpuid();
        this.msrIndexList = kvm.msrIndexList();
        this.archCapabilitiesMsr = Arrays.stream(msrIndexList).anyMatch(m -> m == MSR_IA32_ARCH_CAPABILITIES);
        this.slots = new MemorySlots(vm, Math.max(1, kvm.checkExtension(Capability.NR_MEMSLOTS)),
                kvm.hasExtension(Capability.READONLY_MEM));
        if (config.irqchip() == IrqchipMode.KERNEL) {
            routing = new GsiRouting(vm::setGsiRouting, GsiRouting.kernelIrqchipDefaults(IOAPIC_PINS));
            interrupts = new KernelIrqchipInterrupts(vm, routing, IOAPIC_PINS, kvm.hasExtension(Capability.IRQFD_RESAMPLE),
                    "kvm-vm" + vm.fd().value());
        } else {
            routing = new GsiRouting(vm::setGsiRouting, List.of());
            interrupts = new SplitIrqchipInterrupts(vm, routing, IOAPIC_PINS);
        }
    }

    /** Opens /dev/kvm and creates a VM with {@code config}; nothing stays open if that fails. */
    public static KvmPlatform create(Config config) {
        Kvm kvm = Kvm.open();
        Vm vm = null;
        try {
            kvm.requireExtension(Capability.IRQFD);
            kvm.requireExtension(Capability.IOEVENTFD);
            kvm.requireExtension(Capability.IMMEDIATE_EXIT);
            vm = kvm.createVm();
            vm.setTssAddress(TSS_ADDRESS);
            vm.setIdentityMapAddress(IDENTITY_MAP_ADDRESS);
            if (config.irqchip() == IrqchipMode.KERNEL) {
                vm.createIrqchip();
                if (config.kernelPit()) {
                    vm.createPit2(KvmConstants.PIT_SPEAKER_DUMMY);
                }
            } else {
                kvm.requireExtension(Capability.SPLIT_IRQCHIP);
                vm.enableSplitIrqchip(IOAPIC_PINS);
            }
            return new KvmPlatform(kvm, vm, config);
        } catch (RuntimeException e) {
            if (vm != null) {
                vm.close();
            }
            kvm.close();
            throw e;
        }
    }

    public Config config() {
        return config;
    }

    /** The KVM system handle (capabilities, limits). */
    public Kvm kvm() {
        return kvm;
    }

    /** The VM, for what the platform interface does not cover. */
    public Vm vm() {
        return vm;
    }

    @Override
    public void addMemory(MemoryRegion region) {
        slots.addRam(region);
    }

    @Override
    public synchronized VirtualCpu createVcpu(int index, int count, Bus pio, Bus mmio, boolean strictMmio) {
        Vcpu vcpu = vm.createVcpu(index);
        try {
            vcpu.setCpuid2(CpuidSetup.forVcpu(supportedCpuid, index, count));
            vcpu.setMsrs(bootMsrs());
            // As Firecracker: LINT0 delivers the PIC's ExtINT, LINT1 NMIs (both stay masked until the guest says).
            LapicState lapic = vcpu.getLapic();
            vcpu.setLapic(lapic.withDeliveryMode(LapicState.LVT_LINT0, LapicState.DELIVERY_EXTINT)
                    .withDeliveryMode(LapicState.LVT_LINT1, LapicState.DELIVERY_NMI));
        } catch (RuntimeException e) {
            vcpu.close();
            throw e;
        }
        if (exits == null || !exits.serves(pio, mmio, strictMmio)) {
            exits = new ExitDispatch(pio, mmio, strictMmio);
        }
        KvmVirtualCpu v = new KvmVirtualCpu(vcpu, exits, interrupts::endOfInterruptExit,
                vm.checkExtension(Capability.XSAVE2), msrIndexList);
        vcpus.add(v);
        return v;
    }

    private List<Msr> bootMsrs() {
        List<Msr> msrs = new ArrayList<>(List.of(
                new Msr(MSR_IA32_SYSENTER_CS, 0), new Msr(MSR_IA32_SYSENTER_ESP, 0), new Msr(MSR_IA32_SYSENTER_EIP, 0),
                new Msr(MSR_STAR, 0), new Msr(MSR_CSTAR, 0), new Msr(MSR_KERNEL_GS_BASE, 0),
                new Msr(MSR_SYSCALL_MASK, 0), new Msr(MSR_LSTAR, 0), new Msr(MSR_IA32_TSC, 0),
                new Msr(MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
                new Msr(MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WB)));
        if (archCapabilitiesMsr) {
            // The guest must not read the host's mitigation flags (QEMU: arch-capabilities=off); CPUID
            // hides the MSR too, but not every host lets CPUID hide features.
            msrs.add(new Msr(MSR_IA32_ARCH_CAPABILITIES, 0));
        }
        return msrs;
    }

    /**
     * Lines on the IOAPIC pins, MSI vectors and end-of-interrupt notices, on either irqchip. With the
     * split irqchip, lines work once the VMM's IOAPIC is {@linkplain #connectIoapic connected}.
     */
    @Override
    public InterruptService interrupts() {
        return interrupts;
    }

    @Override
    public synchronized IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch) {
        EventFd fd = EventFd.nonBlocking();
        try {
            vm.registerIoeventfd(fd, address, length, space, datamatch);
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
        KvmIoEvent event = new KvmIoEvent(space, address, length, datamatch, fd, true);
        ioEvents.add(event);
        return event;
    }

    @Override
    public synchronized IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch,
                                        EventFd signal) {
        vm.registerIoeventfd(signal, address, length, space, datamatch);
        KvmIoEvent event = new KvmIoEvent(space, address, length, datamatch, signal, false);
        ioEvents.add(event);
        return event;
    }

    /**
     * A KVM memory slot of its own for {@code host}. Read-only slots need KVM_CAP_READONLY_MEM
     * ({@link UnsupportedOperationException} without it); the guest's writes to them exit as MMIO and go
     * to the MMIO bus. Overlapping RAM or another slot is an {@link IllegalArgumentException}.
     */
    @Override
    public MemorySlot mapMemory(long guestAddress, MemorySegment host, boolean readOnly) {
        return slots.map(guestAddress, host, readOnly);
    }

    /** An ioeventfd registration; closing it deassigns it from the VM, then closes the eventfd. */
    private final class KvmIoEvent implements IoEvent {
        private final AddressSpace space;
        private final long address;
        private final int length;
        private final OptionalLong datamatch;
        private final EventFd fd;
        private final boolean ownsFd; // false: the caller's, left open
        private boolean closed;

        KvmIoEvent(AddressSpace space, long address, int length, OptionalLong datamatch, EventFd fd, boolean ownsFd) {
            this.space = space;
            this.address = address;
            this.length = length;
            this.datamatch = datamatch;
            this.fd = fd;
            this.ownsFd = ownsFd;
        }

        @Override
        public AddressSpace space() {
            return space;
        }

        @Override
        public long address() {
            return address;
        }

        @Override
        public EventFd eventFd() {
            return fd;
        }

        @Override
        public void close() {
            synchronized (KvmPlatform.this) {
                if (closed) {
                    return;
                }
                if (vmOpen) {
                    // if KVM refuses, the registration stays tracked (and its eventfd open) until the VM closes
                    vm.unregisterIoeventfd(fd, address, length, space, datamatch);
                }
                closed = true;
                ioEvents.remove(this);
                if (ownsFd) {
                    fd.close();
                }
            }
        }

        /** The VM is gone, and with it the registration. */
        void release() {
            closed = true;
            if (ownsFd) {
                fd.close();
            }
        }
    }

    /**
     * Split irqchip: connects the VMM's IOAPIC model, with the PIC's inputs for ISA IRQs 0-15 if the
     * machine has a PIC ({@code picInputs} null: none; a line below 16 then drives both, as on a PC).
     * The model sends its interrupts and routes through the returned link; the local APICs' EOI exits
     * go to {@link IoapicModel#endOfInterrupt}. Once only.
     */
    public IoapicLink connectIoapic(IoapicModel ioapic, IntFunction<IrqLine> picInputs) {
        if (!(interrupts instanceof SplitIrqchipInterrupts split)) {
            throw new IllegalStateException("the VMM's IOAPIC needs a split irqchip; KVM's irqchip has its own");
        }
        return split.connect(ioapic, picInputs);
    }

    /** {@link #connectIoapic(IoapicModel, IntFunction)} for a machine without a PIC. */
    public IoapicLink connectIoapic(IoapicModel ioapic) {
        return connectIoapic(ioapic, null);
    }

    /**
     * Split irqchip: connects the VMM's PIC to the boot vCPU and returns what the PIC calls when its
     * INTR output rises, so that vCPU wakes up to take the interrupt.
     */
    public synchronized Runnable connectPic(ExternalInterrupts pic) {
        if (config.irqchip() != IrqchipMode.SPLIT) {
            throw new IllegalStateException("the VMM's PIC needs a split irqchip; KVM's irqchip has its own");
        }
        if (vcpus.isEmpty()) {
            throw new IllegalStateException("create the vCPUs before connecting the PIC");
        }
        KvmVirtualCpu bsp = vcpus.getFirst();
        bsp.connectPic(pic);
        return bsp::kick;
    }

    /** Snapshot format of the platform part; a restore refuses any other. */
    private static final int STATE_VERSION = 1;
    private static final int[] IRQCHIPS = {Vm.IRQCHIP_PIC_MASTER, Vm.IRQCHIP_PIC_SLAVE, Vm.IRQCHIP_IOAPIC};

    /**
     * The host CPU as KVM's supported CPUID reports it: leaf 0's vendor and leaf 1's EAX (family, model,
     * stepping). KVM passes these through from the host unchanged, and they are what the guest was given, so
     * a snapshot taken here is refused on a host whose guests would see a different CPU.
     */
    String cpuSignature() {
        CpuidEntry l0 = cpuid(0);
        CpuidEntry l1 = cpuid(1);
        byte[] vendor = new byte[12];
        int[] words = {l0.ebx(), l0.edx(), l0.ecx()};
        for (int i = 0; i < 12; i++) {
            vendor[i] = (byte) (words[i / 4] >>> (8 * (i % 4)));
        }
        int eax = l1.eax();
        int family = ((eax >>> 8) & 0xf) + (((eax >>> 8) & 0xf) == 0xf ? (eax >>> 20) & 0xff : 0);
        int model = ((eax >>> 4) & 0xf) | ((eax >>> 12) & 0xf0);
        return new String(vendor, java.nio.charset.StandardCharsets.US_ASCII) + " family " + family + " model " + model
                + " stepping " + (eax & 0xf);
    }

    private CpuidEntry cpuid(int leaf) {
        return supportedCpuid.stream().filter(e -> e.function() == leaf && e.index() == 0).findFirst()
                .orElseThrow(() -> new IllegalStateException("KVM's supported CPUID has no leaf " + leaf));
    }

    private boolean hasPit() {
        return config.irqchip() == IrqchipMode.KERNEL && config.kernelPit();
    }

    /**
     * The CPU signature, vCPU count and irqchip mode; the KVM clock; with a kernel irqchip the PIC master,
     * PIC slave and IOAPIC, and the PIT if there is one. The LAPICs are saved with their vCPUs; in split
     * mode the IOAPIC, PIC and PIT are Kindling's device models, saved with the devices.
     */
    @Override
    public synchronized void saveState(StateWriter out) {
        out.putInt(STATE_VERSION);
        out.putString(cpuSignature());
        out.putInt(vcpus.size());
        out.putString(config.irqchip().name());
        out.putBoolean(hasPit());
        ClockData clock = vm.getClock();
        out.putLong(clock.clock());
        if (config.irqchip() == IrqchipMode.KERNEL) {
            for (int chip : IRQCHIPS) {
                out.putBytes(vm.getIrqchip(chip));
            }
            if (hasPit()) {
                out.putBytes(vm.getPit2());
            }
        }
    }

    @Override
    public synchronized void restoreState(StateReader in) {
        in.getInt("platform state version", STATE_VERSION, STATE_VERSION);
        String cpu = in.getString();
        if (!cpu.equals(cpuSignature())) {
            throw new SnapshotException("the snapshot was taken on a " + cpu + ", this host is a " + cpuSignature());
        }
        int count = in.getInt();
        if (count != vcpus.size()) {
            throw new SnapshotException("the snapshot has " + count + " vCPUs, this machine " + vcpus.size());
        }
        String mode = in.getString();
        boolean pit = in.getBoolean();
        if (!mode.equals(config.irqchip().name()) || pit != hasPit()) {
            throw new SnapshotException("the snapshot's irqchip is " + mode + (pit ? " with" : " without")
                    + " an in-kernel PIT, this machine's " + config.irqchip() + (hasPit() ? " with" : " without") + " one");
        }
        long clock = in.getLong();
        List<byte[]> chips = new ArrayList<>();
        byte[] pitState = null;
        if (config.irqchip() == IrqchipMode.KERNEL) {
            for (int i = 0; i < IRQCHIPS.length; i++) {
                chips.add(in.getBytes());
            }
            if (pit) {
                pitState = in.getBytes();
            }
        }
        in.expectEnd();
        try {
            // Guest time continues from the saved value (flags 0: KVM takes the clock as of now).
            vm.setClock(new ClockData(clock, 0, 0, 0));
            for (int i = 0; i < chips.size(); i++) {
                vm.setIrqchip(IRQCHIPS[i], chips.get(i));
            }
            if (pitState != null) {
                vm.setPit2(pitState);
            }
        } catch (IllegalArgumentException | SyscallException e) {
            throw in.bad(e.getMessage());
        }
    }

    @Override
    public int maxVcpus() {
        return kvm.maxVcpus();
    }

    @Override
    public synchronized void close() {
        // vCPUs, the interrupt threads, then the VM (which drops every slot, route, irqfd and ioeventfd),
        // then the eventfds.
        vmOpen = false;
        List<AutoCloseable> all = new ArrayList<>(vcpus);
        all.add(interrupts::stop);
        all.add(vm);
        all.add(kvm);
        all.add(interrupts::release);
        all.add(slots::release);
        for (KvmIoEvent e : ioEvents) {
            all.add(e::release);
        }
        RuntimeException failure = null;
        for (AutoCloseable c : all) {
            try {
                c.close();
            } catch (Exception e) {
                if (failure == null) {
                    failure = e instanceof RuntimeException r ? r : new IllegalStateException("closing the KVM platform failed", e);
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        ioEvents.clear();
        vcpus.clear();
        if (failure != null) {
            throw failure;
        }
    }
}
