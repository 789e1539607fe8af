package dev.kindling.microvm;

import dev.kindling.boot.BootException;
import dev.kindling.boot.CmdLine;
import dev.kindling.boot.DirectBoot;
import dev.kindling.boot.MicrovmLayout;
import dev.kindling.boot.MpTable;
import dev.kindling.device.Device;
import dev.kindling.devices.legacy.I8042;
import dev.kindling.devices.legacy.IoApic;
import dev.kindling.devices.legacy.IrqLines;
import dev.kindling.devices.legacy.Pic8259;
import dev.kindling.devices.legacy.Pit8254;
import dev.kindling.devices.legacy.Rtc;
import dev.kindling.devices.legacy.Serial16550;
import dev.kindling.irq.IrqLine;
import dev.kindling.kvm.Kvm;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.kvm.platform.KvmPlatform;
import dev.kindling.machine.Machine;
import dev.kindling.machine.StopReason;
import dev.kindling.memory.GuestMemory;
import dev.kindling.sys.SyscallException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.function.IntFunction;

/**
 * Builds a {@link Microvm} on the model of QEMU's {@code microvm} machine: memory, vCPUs, a kernel
 * (PVH ELF or bzImage), initrd and command line, the legacy ISA devices with microvm's toggles, and
 * devices of the caller's. {@link #build()} checks everything before it allocates anything, and frees
 * all it took if it fails midway.
 *
 * <p>Toggles, with microvm's meaning: {@code pic}, {@code pit} (AUTO: on), {@code rtc} (AUTO: off,
 * since the machine always runs on KVM), {@code isaSerial} (on), {@code autoKernelCmdline} (on:
 * appends {@code virtio_mmio.device=512@0x<base>:<irq>} for each virtio-mmio transport in use).
 */
public final class MicrovmBuilder {
    public static final long DEFAULT_MEMORY_MIB = 128;
    /** ISA IRQs of the built-in devices. */
    static final int IRQ_PIT = 0, IRQ_KEYBOARD = 1, IRQ_SERIAL = 4, IRQ_RTC = 8;

    private record UserDevice(IoMapEntry.Space space, long base, long length, int irq, Function<IrqLine, Device> factory) {}

    private String name = "microvm";
    private long memoryMib = DEFAULT_MEMORY_MIB;
    private int vcpus = 1;
    private Path kernel;
    private Path initrd;
    private String cmdline = "";
    private InputStream serialInput;
    private OutputStream serialOutput;
    private OnOffAuto pic = OnOffAuto.AUTO;
    private OnOffAuto pit = OnOffAuto.AUTO;
    private OnOffAuto rtc = OnOffAuto.AUTO;
    private boolean isaSerial = true;
    private boolean autoKernelCmdline = true;
    private boolean strictMmio;
    private IrqchipMode irqchip = IrqchipMode.SPLIT;
    private final List<UserDevice> devices = new ArrayList<>();
    private final List<Function<IrqLine, Device>> virtioTransports = new ArrayList<>();

    MicrovmBuilder() {}

    /** A name for threads and logs. */
    public MicrovmBuilder name(String name) {
        this.name = Objects.requireNonNull(name, "name");
        return this;
    }

    public MicrovmBuilder memoryMib(long mib) {
        this.memoryMib = mib;
        return this;
    }

    public MicrovmBuilder vcpus(int count) {
        this.vcpus = count;
        return this;
    }

    /** A PVH ELF (Linux vmlinux or any freestanding PVH image) or a bzImage. */
    public MicrovmBuilder kernel(Path kernel) {
        this.kernel = Objects.requireNonNull(kernel, "kernel");
        return this;
    }

    public MicrovmBuilder initrd(Path initrd) {
        this.initrd = initrd;
        return this;
    }

    public MicrovmBuilder cmdline(String cmdline) {
        this.cmdline = Objects.requireNonNull(cmdline, "cmdline");
        return this;
    }

    /** Where the serial port's host input comes from (null: none). */
    public MicrovmBuilder serialInput(InputStream in) {
        this.serialInput = in;
        return this;
    }

    /** Where the serial port's output goes besides {@link Microvm#console()} (null: only there). */
    public MicrovmBuilder serialOutput(OutputStream out) {
        this.serialOutput = out;
        return this;
    }

    /** The i8259 pair. AUTO: on. OFF needs {@link IrqchipMode#SPLIT}. */
    public MicrovmBuilder pic(OnOffAuto value) {
        this.pic = Objects.requireNonNull(value, "pic");
        return this;
    }

    /** The i8254 at 0x40. AUTO: on (KVM's own PIT with {@link IrqchipMode#KERNEL}). */
    public MicrovmBuilder pit(OnOffAuto value) {
        this.pit = Objects.requireNonNull(value, "pit");
        return this;
    }

    /** The MC146818 RTC/CMOS at 0x70. AUTO: off, as microvm under KVM. */
    public MicrovmBuilder rtc(OnOffAuto value) {
        this.rtc = Objects.requireNonNull(value, "rtc");
        return this;
    }

    /** The 16550A at 0x3f8, IRQ 4 (default on). */
    public MicrovmBuilder isaSerial(boolean on) {
        this.isaSerial = on;
        return this;
    }

    /** Append {@code virtio_mmio.device=} entries for the transports in use (default on). */
    public MicrovmBuilder autoKernelCmdline(boolean on) {
        this.autoKernelCmdline = on;
        return this;
    }

    /** Where the interrupt controllers live; {@link IrqchipMode#SPLIT} by default (see README). */
    public MicrovmBuilder irqchip(IrqchipMode mode) {
        this.irqchip = Objects.requireNonNull(mode, "irqchip");
        return this;
    }

    /** Stop the machine when the guest touches MMIO addresses with no device (default: reads see all ones). */
    public MicrovmBuilder strictMmio(boolean strict) {
        this.strictMmio = strict;
        return this;
    }

    /**
     * Adds a device on the port bus at {@code [base, base + length)}, made by {@code factory} with its
     * interrupt line for ISA IRQ / GSI {@code irq} (or a line that does nothing when {@code irq < 0}).
     * The machine closes it.
     */
    public MicrovmBuilder pioDevice(long base, long length, int irq, Function<IrqLine, Device> factory) {
        devices.add(new UserDevice(IoMapEntry.Space.PIO, base, length, irq, Objects.requireNonNull(factory)));
        return this;
    }

    /** Adds a device on the MMIO bus; see {@link #pioDevice}. */
    public MicrovmBuilder mmioDevice(long base, long length, int irq, Function<IrqLine, Device> factory) {
        devices.add(new UserDevice(IoMapEntry.Space.MMIO, base, length, irq, Objects.requireNonNull(factory)));
        return this;
    }

    /**
     * Adds a device behind the next free virtio-mmio transport: transport {@code i} is 512 bytes at
     * {@code 0xd0000000 + i * 0x200} with IRQ {@code 5 + i}, in the order they are added.
     */
    public MicrovmBuilder virtioMmioTransport(Function<IrqLine, Device> factory) {
        virtioTransports.add(Objects.requireNonNull(factory));
        return this;
    }

    /** Applies a Firecracker-style JSON configuration file. */
    public MicrovmBuilder config(Path json) {
        JsonConfig.read(json).applyTo(this);
        return this;
    }

    // ---- build

    private record Plan(boolean pic, boolean pit, boolean rtc, Map<Integer, String> irqs, long ramBytes) {}

    private Plan validate() {
        if (kernel == null) {
            throw new ConfigException("no kernel: call kernel(path)");
        }
        requireReadable("kernel", kernel);
        if (initrd != null) {
            requireReadable("initrd", initrd);
        }
        if (memoryMib < 1) {
            throw new ConfigException("memory must be at least 1 MiB, got " + memoryMib + " MiB");
        }
        long ramBytes;
        try {
            ramBytes = Math.multiplyExact(memoryMib, 1L << 20);
            MicrovmLayout.checkRamSize(ramBytes);
        } catch (ArithmeticException | BootException e) {
            throw new ConfigException("memory of " + memoryMib + " MiB is not possible: " + e.getMessage());
        }
        long host = hostMemoryBytes();
        if (host > 0 && ramBytes > host) {
            throw new ConfigException("memory of " + memoryMib + " MiB is more than this host has (" + (host >> 20) + " MiB)");
        }
        if (vcpus < 1) {
            throw new ConfigException("vCPU count must be at least 1, got " + vcpus);
        }
        int limit;
        try (Kvm kvm = Kvm.open()) {
            limit = Math.min(kvm.maxVcpus(), MpTable.MAX_CPUS);
        } catch (SyscallException e) {
            throw new ConfigException("KVM is not usable: " + e.getMessage(), e);
        }
        if (vcpus > limit) {
            throw new ConfigException("vCPU count " + vcpus + " is above the limit of " + limit + " on this host");
        }
        boolean picOn = pic.resolve(true);
        if (!picOn && irqchip == IrqchipMode.KERNEL) {
            throw new ConfigException("pic=off needs irqchip(SPLIT): KVM's in-kernel irqchip always has a PIC");
        }
        boolean pitOn = pit.resolve(true);
        boolean rtcOn = rtc.resolve(false);
        if (virtioTransports.size() > MicrovmLayout.VIRTIO_MAX_TRANSPORTS) {
            throw new ConfigException(virtioTransports.size() + " virtio-mmio devices, but microvm has "
                    + MicrovmLayout.VIRTIO_MAX_TRANSPORTS + " transports");
        }
        Map<Integer, String> irqs = new TreeMap<>();
        claim(irqs, IRQ_KEYBOARD, "i8042");
        if (pitOn) {
            claim(irqs, IRQ_PIT, "pit");
        }
        if (isaSerial) {
            claim(irqs, IRQ_SERIAL, "isa-serial");
        }
        if (rtcOn) {
            claim(irqs, IRQ_RTC, "rtc");
        }
        for (int i = 0; i < virtioTransports.size(); i++) {
            claim(irqs, MicrovmLayout.VIRTIO_IRQ_BASE + i, "virtio-mmio transport " + i);
        }
        for (UserDevice d : devices) {
            if (d.irq() >= 0) {
                claim(irqs, d.irq(), "device at 0x" + Long.toHexString(d.base()));
            }
        }
        return new Plan(picOn, pitOn, rtcOn, irqs, ramBytes);
    }

    private static void claim(Map<Integer, String> irqs, int irq, String who) {
        if (irq >= MicrovmLayout.IOAPIC_PINS) {
            throw new ConfigException(who + " wants IRQ " + irq + ", but the IOAPIC has " + MicrovmLayout.IOAPIC_PINS + " pins");
        }
        String other = irqs.putIfAbsent(irq, who);
        if (other != null) {
            throw new ConfigException("IRQ " + irq + " is wanted by both " + other + " and " + who);
        }
    }

    private static void requireReadable(String what, Path path) {
        if (!Files.isRegularFile(path)) {
            throw new ConfigException(what + " " + path + " does not exist or is not a file");
        }
        if (!Files.isReadable(path)) {
            throw new ConfigException(what + " " + path + " is not readable");
        }
    }

    private static byte[] read(String what, Path path) {
        try {
            return Files.readAllBytes(path);
        } catch (IOException e) {
            throw new ConfigException("cannot read " + what + " " + path + ": " + e.getMessage(), e);
        }
    }

    private static long hostMemoryBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemTotal:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException | NumberFormatException e) {
            // unknown: no host limit to check against
        }
        return -1;
    }

    /** Checks the configuration, then creates the VM, its devices and boot state. Does not start it. */
    public Microvm build() {
        Plan plan = validate();
        byte[] kernelImage = read("kernel", kernel);
        byte[] initrdImage = initrd == null ? null : read("initrd", initrd);
        CmdLine cmd;
        try {
            cmd = CmdLine.of(cmdline);
            if (autoKernelCmdline) {
                for (int i = 0; i < virtioTransports.size(); i++) {
                    cmd.appendVirtioMmioDevice(transportBase(i), MicrovmLayout.VIRTIO_IRQ_BASE + i);
                }
            }
        } catch (IllegalArgumentException | BootException e) {
            throw new ConfigException("command line: " + e.getMessage(), e);
        }
        MpTable.Options mp = new MpTable.Options(
                irqchip == IrqchipMode.SPLIT ? MpTable.IOAPIC_VERSION_QEMU : MpTable.IOAPIC_VERSION_KVM, false, java.util.Set.of());

        GuestMemory memory = MicrovmLayout.anonymousMemory(plan.ramBytes());
        DirectBoot.Result boot;
        try {
            boot = DirectBoot.boot(memory, kernelImage, initrdImage, cmd, vcpus, DirectBoot.Protocol.AUTO, mp);
        } catch (RuntimeException e) {
            memory.close();
            throw e instanceof BootException ? new ConfigException(kernel + ": " + e.getMessage(), e) : e;
        }

        KvmPlatform platform;
        try {
            platform = KvmPlatform.create(new KvmPlatform.Config(irqchip, irqchip == IrqchipMode.KERNEL && plan.pit()));
        } catch (RuntimeException e) {
            memory.close();
            throw e;
        }
        Machine machine = new Machine(name, platform, memory, vcpus, strictMmio); // closes both if it fails
        try {
            return wire(machine, platform, plan, boot, cmd);
        } catch (RuntimeException e) {
            machine.close();
            throw e;
        }
    }

    private static long transportBase(int i) {
        return MicrovmLayout.VIRTIO_MMIO_BASE + (long) i * MicrovmLayout.VIRTIO_MMIO_SIZE;
    }

    private Microvm wire(Machine machine, KvmPlatform platform, Plan plan, DirectBoot.Result boot, CmdLine cmd) {
        List<IoMapEntry> kvmOwned = new ArrayList<>();
        IntFunction<IrqLine> isaLine;
        if (irqchip == IrqchipMode.SPLIT) {
            IoApic ioapic = new IoApic("ioapic", vcpus, new KvmIoapicSink(platform));
            attach(machine, IoMapEntry.Space.MMIO, ioapic.busRanges(), ioapic);
            platform.onIoapicEoi(ioapic::endOfInterrupt);
            if (plan.pic()) {
                PicWiring wiring = new PicWiring();
                Pic8259 pic = new Pic8259(wiring);
                wiring.connect(pic, platform);
                attach(machine, IoMapEntry.Space.PIO, pic.busRanges(), pic);
                isaLine = irq -> irq < 16 ? IrqLines.fanOut(irq, pic.line(irq), ioapic.line(irq)) : ioapic.line(irq);
            } else {
                isaLine = ioapic::line;
            }
            if (plan.pit()) {
                Pit8254 pit = new Pit8254("pit", isaLine.apply(IRQ_PIT), System::nanoTime);
                attach(machine, IoMapEntry.Space.PIO, pit.busRanges(), pit);
            }
        } else {
            isaLine = platform::irqLine;
            kvmOwned.add(new IoMapEntry(IoMapEntry.Space.PIO, 0x20, 2, "pic-master", IoMapEntry.Owner.KVM));
            kvmOwned.add(new IoMapEntry(IoMapEntry.Space.PIO, 0xa0, 2, "pic-slave", IoMapEntry.Owner.KVM));
            kvmOwned.add(new IoMapEntry(IoMapEntry.Space.PIO, 0x4d0, 2, "elcr", IoMapEntry.Owner.KVM));
            kvmOwned.add(new IoMapEntry(IoMapEntry.Space.MMIO, IoApic.BASE, IoApic.LENGTH, "ioapic", IoMapEntry.Owner.KVM));
            if (plan.pit()) {
                kvmOwned.add(new IoMapEntry(IoMapEntry.Space.PIO, 0x40, 4, "pit", IoMapEntry.Owner.KVM));
                kvmOwned.add(new IoMapEntry(IoMapEntry.Space.PIO, 0x61, 1, "pit-speaker", IoMapEntry.Owner.KVM));
            }
        }
        kvmOwned.add(new IoMapEntry(IoMapEntry.Space.MMIO, MicrovmLayout.LAPIC_ADDRESS, 0x1000, "local-apic", IoMapEntry.Owner.KVM));

        if (plan.rtc()) {
            Rtc rtc = new Rtc("rtc", isaLine.apply(IRQ_RTC), java.time.Clock.systemUTC());
            long low = MicrovmLayout.lowRamSize(plan.ramBytes());
            rtc.setMemorySize(low, plan.ramBytes() - low);
            attach(machine, IoMapEntry.Space.PIO, rtc.busRanges(), rtc);
        }
        Console console = new Console(serialOutput);
        Serial16550 serial = null;
        if (isaSerial) {
            serial = new Serial16550("serial0", isaLine.apply(IRQ_SERIAL), serialInput, console);
            attach(machine, IoMapEntry.Space.PIO, serial.busRanges(), serial);
        }
        I8042 i8042 = new I8042("i8042",
                () -> machine.requestExit(new StopReason.Reset("i8042 reset (0xFE)")),
                isaLine.apply(IRQ_KEYBOARD), null);
        attach(machine, IoMapEntry.Space.PIO, i8042.busRanges(), i8042);

        for (int i = 0; i < virtioTransports.size(); i++) {
            Device d = virtioTransports.get(i).apply(isaLine.apply(MicrovmLayout.VIRTIO_IRQ_BASE + i));
            machine.attachMmio(transportBase(i), MicrovmLayout.VIRTIO_MMIO_SIZE, d);
        }
        for (UserDevice u : devices) {
            Device d = u.factory().apply(u.irq() >= 0 ? isaLine.apply(u.irq()) : IrqLines.none(0));
            if (u.space() == IoMapEntry.Space.PIO) {
                machine.attachPio(u.base(), u.length(), d);
            } else {
                machine.attachMmio(u.base(), u.length(), d);
            }
        }
        machine.vcpus().getFirst().setBootState(boot.bsp());
        return new Microvm(machine, console, serial, kvmOwned, cmd.toString(), boot.protocol());
    }

    private static void attach(Machine machine, IoMapEntry.Space space, List<dev.kindling.bus.BusRange> ranges, AutoCloseable owner) {
        machine.own(owner);
        for (var r : ranges) {
            if (space == IoMapEntry.Space.PIO) {
                machine.pio().register(r.base(), r.length(), r.device());
            } else {
                machine.mmio().register(r.base(), r.length(), r.device());
            }
        }
    }
}
