package dev.kindling.kvm;

import static dev.kindling.sys.CLayouts.offsetOf;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.kindling.bus.AddressSpace;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.sys.CLayouts;
import dev.kindling.sys.Errno;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.Mapping;
import dev.kindling.sys.SyscallException;
import dev.kindling.sys.ThreadKick;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;

/**
 * A KVM virtual machine. Closing it closes the vCPUs it created that are still open, then the VM fd.
 * Guest memory is the caller's: it must stay mapped while a slot refers to it.
 */
public final class Vm implements AutoCloseable {
    private static final StructLayout MEM = KvmStructs.KVM_USERSPACE_MEMORY_REGION;
    private static final long MEM_SLOT = offsetOf(MEM, "slot"), MEM_FLAGS = offsetOf(MEM, "flags"),
            MEM_GPA = offsetOf(MEM, "guest_phys_addr"), MEM_SIZE = offsetOf(MEM, "memory_size"),
            MEM_UADDR = offsetOf(MEM, "userspace_addr");
    private static final StructLayout IRQFD = KvmStructs.KVM_IRQFD;
    private static final long IRQFD_FD = offsetOf(IRQFD, "fd"), IRQFD_GSI = offsetOf(IRQFD, "gsi"),
            IRQFD_FLAGS = offsetOf(IRQFD, "flags"), IRQFD_RESAMPLEFD = offsetOf(IRQFD, "resamplefd");
    private static final StructLayout IOEVENTFD = KvmStructs.KVM_IOEVENTFD;
    private static final long IOE_DATAMATCH = offsetOf(IOEVENTFD, "datamatch"), IOE_ADDR = offsetOf(IOEVENTFD, "addr"),
            IOE_LEN = offsetOf(IOEVENTFD, "len"), IOE_FD = offsetOf(IOEVENTFD, "fd"),
            IOE_FLAGS = offsetOf(IOEVENTFD, "flags");
    private static final StructLayout IRQ_LEVEL = KvmStructs.KVM_IRQ_LEVEL;
    private static final long LEVEL_IRQ = offsetOf(IRQ_LEVEL, CLayouts.ANONYMOUS_PREFIX + "irq", "irq"),
            LEVEL_LEVEL = offsetOf(IRQ_LEVEL, "level");
    private static final StructLayout MSI = KvmStructs.KVM_MSI;
    private static final long MSI_LO = offsetOf(MSI, "address_lo"), MSI_HI = offsetOf(MSI, "address_hi"),
            MSI_DATA = offsetOf(MSI, "data");
    private static final StructLayout ROUTE = KvmStructs.KVM_IRQ_ROUTING_ENTRY;
    private static final long ROUTE_GSI = offsetOf(ROUTE, "gsi"), ROUTE_TYPE = offsetOf(ROUTE, "type"),
            ROUTE_IRQCHIP = offsetOf(ROUTE, "u", "irqchip", "irqchip"), ROUTE_PIN = offsetOf(ROUTE, "u", "irqchip", "pin"),
            ROUTE_MSI_LO = offsetOf(ROUTE, "u", "msi", "address_lo"), ROUTE_MSI_HI = offsetOf(ROUTE, "u", "msi", "address_hi"),
            ROUTE_MSI_DATA = offsetOf(ROUTE, "u", "msi", "data");
    private static final long ROUTING_NR = offsetOf(KvmStructs.KVM_IRQ_ROUTING, "nr"),
            ROUTING_ENTRIES = offsetOf(KvmStructs.KVM_IRQ_ROUTING, "entries");
    private static final StructLayout CAP = KvmStructs.KVM_ENABLE_CAP;
    private static final long CAP_CAP = offsetOf(CAP, "cap"), CAP_ARGS = offsetOf(CAP, "args");
    private static final StructLayout CLOCK = KvmStructs.KVM_CLOCK_DATA;
    private static final long CLOCK_CLOCK = offsetOf(CLOCK, "clock"), CLOCK_FLAGS = offsetOf(CLOCK, "flags"),
            CLOCK_REALTIME = offsetOf(CLOCK, "realtime"), CLOCK_HOST_TSC = offsetOf(CLOCK, "host_tsc");
    private static final long PIT_FLAGS = offsetOf(KvmStructs.KVM_PIT_CONFIG, "flags");

    private final Fd fd;
    private final int vcpuMmapSize;
    private final List<Vcpu> vcpus = new ArrayList<>();
    /** Keeps the host memory of each slot reachable, so an automatic arena cannot free it under the guest. */
    private final Map<Integer, MemorySegment> slots = new HashMap<>();
    private boolean closed;

    Vm(Fd fd, int vcpuMmapSize) {
        this.fd = fd;
        this.vcpuMmapSize = vcpuMmapSize;
    }

    public Fd fd() {
        return fd;
    }

    /** KVM_CHECK_EXTENSION on the VM, which may answer per VM (needs {@link Capability#CHECK_EXTENSION_VM}). */
    public int checkExtension(Capability cap) {
        return Libc.ioctl(fd, KvmIoctls.KVM_CHECK_EXTENSION, cap.number());
    }

    /**
     * KVM_SET_USER_MEMORY_REGION: maps {@code host} at guest-physical {@code guestAddress} in {@code slot}.
     * Replaces the slot's flags if it exists ({@link KvmConstants#MEM_LOG_DIRTY_PAGES}, {@link KvmConstants#MEM_READONLY}).
     */
    public void setUserMemoryRegion(int slot, int flags, long guestAddress, MemorySegment host) {
        if (!host.isNative()) {
            throw new IllegalArgumentException("guest memory must be native memory, got a heap segment");
        }
        setRegion(slot, flags, guestAddress, host.byteSize(), host.address());
        synchronized (this) {
            slots.put(slot, host);
        }
    }

    /** Maps a {@link MemoryRegion} at its guest address. */
    public void setUserMemoryRegion(int slot, MemoryRegion region) {
        setUserMemoryRegion(slot, 0, region.guestAddress(), region.segment());
    }

    /** Deletes {@code slot} (memory_size 0); the guest no longer sees that memory. */
    public void removeUserMemoryRegion(int slot) {
        setRegion(slot, 0, 0, 0, 0);
        synchronized (this) {
            slots.remove(slot);
        }
    }

    private void setRegion(int slot, int flags, long gpa, long size, long uaddr) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(MEM);
            s.set(JAVA_INT, MEM_SLOT, slot);
            s.set(JAVA_INT, MEM_FLAGS, flags);
            s.set(JAVA_LONG, MEM_GPA, gpa);
            s.set(JAVA_LONG, MEM_SIZE, size);
            s.set(JAVA_LONG, MEM_UADDR, uaddr);
            Libc.ioctl(fd, KvmIoctls.KVM_SET_USER_MEMORY_REGION, s);
        }
    }

    /** KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and LAPICs. Call before creating vCPUs. */
    public void createIrqchip() {
        Libc.ioctl(fd, KvmIoctls.KVM_CREATE_IRQCHIP, 0);
    }

    /**
     * KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP): in-kernel LAPICs only; the VMM emulates the IOAPIC and PIC,
     * with {@code ioapicPins} routes reserved for it. Call before creating vCPUs.
     */
    public void enableSplitIrqchip(int ioapicPins) {
        enableCap(Capability.SPLIT_IRQCHIP, ioapicPins);
    }

    /** KVM_ENABLE_CAP on the VM with up to four arguments. */
    public void enableCap(Capability cap, long... args) {
        enableCap(fd, cap, args);
    }

    static void enableCap(Fd fd, Capability cap, long... args) {
        if (args.length > 4) {
            throw new IllegalArgumentException("KVM_ENABLE_CAP takes at most 4 arguments, got " + args.length);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(CAP);
            s.set(JAVA_INT, CAP_CAP, cap.number());
            for (int i = 0; i < args.length; i++) {
                s.set(JAVA_LONG, CAP_ARGS + 8L * i, args[i]);
            }
            Libc.ioctl(fd, KvmIoctls.KVM_ENABLE_CAP, s);
        }
    }

    /** KVM_CREATE_PIT2 with the dummy speaker port (0x61), as Firecracker does. */
    public void createPit2() {
        createPit2(KvmConstants.PIT_SPEAKER_DUMMY);
    }

    public void createPit2(int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(KvmStructs.KVM_PIT_CONFIG);
            s.set(JAVA_INT, PIT_FLAGS, flags);
            Libc.ioctl(fd, KvmIoctls.KVM_CREATE_PIT2, s);
        }
    }

    /** KVM_SET_TSS_ADDR: three pages of guest-physical space KVM needs on Intel (real-mode emulation). */
    public void setTssAddress(long address) {
        Libc.ioctl(fd, KvmIoctls.KVM_SET_TSS_ADDR, address);
    }

    /** KVM_SET_IDENTITY_MAP_ADDR: one page for the EPT identity map on Intel. */
    public void setIdentityMapAddress(long address) {
        try (Arena arena = Arena.ofConfined()) {
            Libc.ioctl(fd, KvmIoctls.KVM_SET_IDENTITY_MAP_ADDR, arena.allocateFrom(JAVA_LONG, address));
        }
    }

    /** KVM_IRQ_LINE: sets the level of an in-kernel irqchip input. */
    public void irqLine(int gsi, boolean level) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(IRQ_LEVEL);
            s.set(JAVA_INT, LEVEL_IRQ, gsi);
            s.set(JAVA_INT, LEVEL_LEVEL, level ? 1 : 0);
            Libc.ioctl(fd, KvmIoctls.KVM_IRQ_LINE, s);
        }
    }

    /** KVM_IRQFD: a signal on {@code event} injects an edge on {@code gsi}. */
    public void registerIrqfd(EventFd event, int gsi) {
        irqfd(event, gsi, 0, null);
    }

    /**
     * KVM_IRQFD with KVM_IRQFD_FLAG_RESAMPLE: a level-triggered line asserted by {@code event}; KVM
     * de-asserts it and signals {@code resample} when the guest EOIs, so the device can re-raise it.
     */
    public void registerIrqfd(EventFd event, EventFd resample, int gsi) {
        irqfd(event, gsi, KvmConstants.IRQFD_FLAG_RESAMPLE, resample);
    }

    public void unregisterIrqfd(EventFd event, int gsi) {
        irqfd(event, gsi, KvmConstants.IRQFD_FLAG_DEASSIGN, null);
    }

    private void irqfd(EventFd event, int gsi, int flags, EventFd resample) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(IRQFD);
            s.set(JAVA_INT, IRQFD_FD, event.fd().value());
            s.set(JAVA_INT, IRQFD_GSI, gsi);
            s.set(JAVA_INT, IRQFD_FLAGS, flags);
            if (resample != null) {
                s.set(JAVA_INT, IRQFD_RESAMPLEFD, resample.fd().value());
            }
            Libc.ioctl(fd, KvmIoctls.KVM_IRQFD, s);
        }
    }

    /**
     * KVM_IOEVENTFD: a guest write of {@code length} bytes (1, 2, 4 or 8; 0 for any) to {@code address}
     * signals {@code event} inside the kernel instead of exiting, if it equals {@code datamatch} when given.
     */
    public void registerIoeventfd(EventFd event, long address, int length, AddressSpace space, OptionalLong datamatch) {
        ioeventfd(event, address, length, space, datamatch, 0);
    }

    /** Removes a registration; the arguments must equal those it was registered with. */
    public void unregisterIoeventfd(EventFd event, long address, int length, AddressSpace space, OptionalLong datamatch) {
        ioeventfd(event, address, length, space, datamatch, KvmConstants.IOEVENTFD_FLAG_DEASSIGN);
    }

    private void ioeventfd(EventFd event, long address, int length, AddressSpace space, OptionalLong datamatch, int flags) {
        if (space == AddressSpace.PIO) {
            flags |= KvmConstants.IOEVENTFD_FLAG_PIO;
        }
        if (datamatch.isPresent()) {
            flags |= KvmConstants.IOEVENTFD_FLAG_DATAMATCH;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(IOEVENTFD);
            s.set(JAVA_LONG, IOE_DATAMATCH, datamatch.orElse(0));
            s.set(JAVA_LONG, IOE_ADDR, address);
            s.set(JAVA_INT, IOE_LEN, length);
            s.set(JAVA_INT, IOE_FD, event.fd().value());
            s.set(JAVA_INT, IOE_FLAGS, flags);
            Libc.ioctl(fd, KvmIoctls.KVM_IOEVENTFD, s);
        }
    }

    /** KVM_SIGNAL_MSI: injects an MSI; returns &gt;0 if delivered, 0 if the guest blocked it. */
    public int signalMsi(long address, int data) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(MSI);
            s.set(JAVA_INT, MSI_LO, (int) address);
            s.set(JAVA_INT, MSI_HI, (int) (address >>> 32));
            s.set(JAVA_INT, MSI_DATA, data);
            return Libc.ioctl(fd, KvmIoctls.KVM_SIGNAL_MSI, s);
        }
    }

    /** KVM_SET_GSI_ROUTING: replaces the whole routing table. */
    public void setGsiRouting(List<RoutingEntry> entries) {
        long entrySize = ROUTE.byteSize();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(ROUTING_ENTRIES + entrySize * entries.size(), 8);
            s.set(JAVA_INT, ROUTING_NR, entries.size());
            for (int i = 0; i < entries.size(); i++) {
                long at = ROUTING_ENTRIES + entrySize * i;
                RoutingEntry e = entries.get(i);
                s.set(JAVA_INT, at + ROUTE_GSI, e.gsi());
                switch (e) {
                    case RoutingEntry.Irqchip c -> {
                        s.set(JAVA_INT, at + ROUTE_TYPE, KvmConstants.IRQ_ROUTING_IRQCHIP);
                        s.set(JAVA_INT, at + ROUTE_IRQCHIP, c.irqchip());
                        s.set(JAVA_INT, at + ROUTE_PIN, c.pin());
                    }
                    case RoutingEntry.Msi m -> {
                        s.set(JAVA_INT, at + ROUTE_TYPE, KvmConstants.IRQ_ROUTING_MSI);
                        s.set(JAVA_INT, at + ROUTE_MSI_LO, (int) m.address());
                        s.set(JAVA_INT, at + ROUTE_MSI_HI, (int) (m.address() >>> 32));
                        s.set(JAVA_INT, at + ROUTE_MSI_DATA, m.data());
                    }
                }
            }
            Libc.ioctl(fd, KvmIoctls.KVM_SET_GSI_ROUTING, s);
        }
    }

    /** PIC master, PIC slave and IOAPIC: the chip ids of KVM_GET/SET_IRQCHIP. */
    public static final int IRQCHIP_PIC_MASTER = 0;
    public static final int IRQCHIP_PIC_SLAVE = 1;
    public static final int IRQCHIP_IOAPIC = 2;

    private static final long IRQCHIP_SIZE = KvmStructs.KVM_IRQCHIP.byteSize();
    private static final long IRQCHIP_CHIP = offsetOf(KvmStructs.KVM_IRQCHIP, "chip");
    private static final long IRQCHIP_CHIP_SIZE = IRQCHIP_SIZE - IRQCHIP_CHIP;
    private static final long PIT2_SIZE = KvmStructs.KVM_PIT_STATE2.byteSize();

    /** KVM_GET_IRQCHIP: the in-kernel chip's state (512 opaque bytes); needs a full in-kernel irqchip. */
    public byte[] getIrqchip(int chipId) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(IRQCHIP_SIZE, 8);
            s.set(JAVA_INT, 0, chipId);
            Libc.ioctl(fd, KvmIoctls.KVM_GET_IRQCHIP, s);
            return s.asSlice(IRQCHIP_CHIP).toArray(JAVA_BYTE);
        }
    }

    /** KVM_SET_IRQCHIP with the 512 bytes {@link #getIrqchip} gave. */
    public void setIrqchip(int chipId, byte[] state) {
        if (state.length != IRQCHIP_CHIP_SIZE) {
            throw new IllegalArgumentException("irqchip state is " + IRQCHIP_CHIP_SIZE + " bytes, not " + state.length);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(IRQCHIP_SIZE, 8);
            s.set(JAVA_INT, 0, chipId);
            MemorySegment.copy(state, 0, s, JAVA_BYTE, IRQCHIP_CHIP, state.length);
            Libc.ioctl(fd, KvmIoctls.KVM_SET_IRQCHIP, s);
        }
    }

    /** KVM_GET_PIT2: the in-kernel PIT's state (struct kvm_pit_state2, opaque). */
    public byte[] getPit2() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(PIT2_SIZE, 8);
            Libc.ioctl(fd, KvmIoctls.KVM_GET_PIT2, s);
            return s.toArray(JAVA_BYTE);
        }
    }

    public void setPit2(byte[] state) {
        if (state.length != PIT2_SIZE) {
            throw new IllegalArgumentException("kvm_pit_state2 is " + PIT2_SIZE + " bytes, not " + state.length);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(PIT2_SIZE, 8);
            MemorySegment.copy(state, 0, s, JAVA_BYTE, 0, state.length);
            Libc.ioctl(fd, KvmIoctls.KVM_SET_PIT2, s);
        }
    }

   /** KVM_GET_CLOCK: the kvmclock value the guest sees now. */
    public ClockData getClock() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(CLOCK);
            Libc.ioctl(fd, KvmIoctls.KVM_GET_CLOCK, s);
            return new ClockData(s.get(JAVA_LONG, CLOCK_CLOCK), s.get(JAVA_INT, CLOCK_FLAGS),
                    s.get(JAVA_LONG, CLOCK_REALTIME), s.get(JAVA_LONG, CLOCK_HOST_TSC));
        }
    }

    /** KVM_SET_CLOCK. */
    public void setClock(ClockData clock) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(CLOCK);
            s.set(JAVA_LONG, CLOCK_CLOCK, clock.clock());
            s.set(JAVA_INT, CLOCK_FLAGS, clock.flags());
            s.set(JAVA_LONG, CLOCK_REALTIME, clock.realtime());
            s.set(JAVA_LONG, CLOCK_HOST_TSC, clock.hostTsc());
            Libc.ioctl(fd, KvmIoctls.KVM_SET_CLOCK, s);
        }
    }

    private static final long CREATE_TYPE = offsetOf(KvmStructs.KVM_CREATE_DEVICE, "type"),
            CREATE_FD = offsetOf(KvmStructs.KVM_CREATE_DEVICE, "fd"),
            CREATE_FLAGS = offsetOf(KvmStructs.KVM_CREATE_DEVICE, "flags");

    /** Whether KVM can create a device of {@code type} ({@code KVM_DEV_TYPE_*}), asked with KVM_CREATE_DEVICE_TEST. */
    public boolean canCreateDevice(int type) {
        try {
            createDevice(type, KvmConstants.CREATE_DEVICE_TEST);
            return true;
        } catch (SyscallException e) {
            if (e.errno() == Errno.ENODEV) {
                return false;
            }
            throw e;
        }
    }

    /** KVM_CREATE_DEVICE of {@code type} ({@code KVM_DEV_TYPE_*}): the device's fd, for KVM_SET_DEVICE_ATTR. */
    public Fd createDevice(int type) {
        return Fd.adopt(createDevice(type, 0), "kvm device " + type);
    }

    /** The new device's fd number (none with KVM_CREATE_DEVICE_TEST). */
    private int createDevice(int type, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(KvmStructs.KVM_CREATE_DEVICE);
            s.set(JAVA_INT, CREATE_TYPE, type);
            s.set(JAVA_INT, CREATE_FLAGS, flags);
            Libc.ioctl(fd, KvmIoctls.KVM_CREATE_DEVICE, s);
            return s.get(JAVA_INT, CREATE_FD);
        }
    }

    /**
     * KVM_CREATE_VCPU and maps its run page. Installs the signal that kicks vCPUs first, so a host
     * program that has its own handler on it learns here (see {@link ThreadKick#install()}).
     */
    public Vcpu createVcpu(int id) {
        ThreadKick.install();
        Fd vcpuFd = Fd.adopt(Libc.ioctl(fd, KvmIoctls.KVM_CREATE_VCPU, id), "vcpu " + id);
        Mapping run = null;
        try {
            run = Mapping.of(vcpuFd, 0, vcpuMmapSize, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED);
            Vcpu vcpu = new Vcpu(this, id, vcpuFd, run);
            synchronized (this) {
                if (!closed) {
                    vcpus.add(vcpu);
                    return vcpu;
                }
            }
            vcpu.close(); // close() raced with us: it would not have seen this vCPU
            throw new IllegalStateException(fd.what() + " is closed");
        } catch (RuntimeException e) {
            if (run != null) {
                run.close();
            }
            vcpuFd.close();
            throw e;
        }
    }

    /** The vCPUs created here and not yet closed. */
    public synchronized List<Vcpu> vcpus() {
        return List.copyOf(vcpus);
    }

    synchronized void forget(Vcpu vcpu) {
        vcpus.remove(vcpu);
    }

    @Override
    public void close() {
        List<Vcpu> open;
        synchronized (this) {
            closed = true;
            open = List.copyOf(vcpus);
        }
        RuntimeException failure = null;
        for (Vcpu v : open) {
            try {
                v.close();
            } catch (RuntimeException e) {
                failure = failure == null ? e : failure;
            }
        }
        fd.close();
        synchronized (this) {
            slots.clear();
        }
        if (failure != null) {
            throw failure;
        }
    }
}
