package dev.kindling.microvm;

import dev.kindling.boot.AddressRange;
import dev.kindling.boot.BootException;
import dev.kindling.boot.CmdLine;
import dev.kindling.boot.DirectBoot;
import dev.kindling.boot.KernelLoader;
import dev.kindling.boot.LinuxBoot;
import dev.kindling.boot.LoadedKernel;
import dev.kindling.boot.MicrovmLayout;
import dev.kindling.boot.MpTable;
import dev.kindling.boot.PvhBoot;
import dev.kindling.boot.X86DeviceTree;
import dev.kindling.bus.AddressSpace;
import dev.kindling.bus.BusRange;
import dev.kindling.device.Device;
import dev.kindling.device.DeviceContext;
import dev.kindling.devices.ivshmem.IvshmemMemory;
import dev.kindling.devices.legacy.I8042;
import dev.kindling.devices.legacy.IoApic;
import dev.kindling.devices.legacy.IrqLines;
import dev.kindling.devices.legacy.Pic8259;
import dev.kindling.devices.legacy.Pit8254;
import dev.kindling.devices.legacy.Rtc;
import dev.kindling.devices.legacy.Serial16550;
import dev.kindling.devices.pci.PciHostBridge;
import dev.kindling.devices.vfio.PlatformDeviceBackend;
import dev.kindling.devices.vfio.VfioPlatformBackend;
import dev.kindling.devices.vfio.VfioPlatformDevice;
import dev.kindling.devices.vfio.VfioPlatformOptions;
import dev.kindling.devices.virtio.VirtioDevice;
import dev.kindling.devices.virtio.blk.BlkOptions;
import dev.kindling.devices.virtio.blk.VirtioBlk;
import dev.kindling.devices.virtio.console.VirtioConsole;
import dev.kindling.devices.virtio.mmio.VirtioMmioTransport;
import dev.kindling.devices.virtio.net.MacAddress;
import dev.kindling.devices.virtio.net.NetBackend;
import dev.kindling.devices.virtio.net.NetworkInterface;
import dev.kindling.devices.virtio.net.PasstBackend;
import dev.kindling.devices.virtio.net.TapBackend;
import dev.kindling.devices.virtio.net.Tun;
import dev.kindling.devices.virtio.net.VirtioNet;
import dev.kindling.devices.virtio.rng.VirtioRng;
import dev.kindling.devices.virtio.vsock.Vsock;
import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.kvm.Kvm;
import dev.kindling.kvm.Vm;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.kvm.platform.KvmPlatform;
import dev.kindling.machine.Machine;
import dev.kindling.machine.MachineState;
import dev.kindling.machine.StopReason;
import dev.kindling.memory.GuestMemory;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;
import dev.kindling.sys.Errno;
import dev.kindling.sys.Fd;
import dev.kindling.sys.PollingInputStream;
import dev.kindling.sys.SignalInUseException;
import dev.kindling.sys.SyscallException;
import dev.kindling.vfio.KvmVfio;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Clock;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;
import java.util.function.IntFunction;
import java.util.function.Supplier;

/**
 * Builds a {@link Microvm} on the model of QEMU's {@code microvm} machine: memory, vCPUs, a kernel
 * (PVH ELF or bzImage), initrd and command line, the legacy ISA devices with microvm's toggles, and
 * devices of the caller's ({@link #device}, {@link #virtioMmioTransport}).
 *
 * <pre>{@code
 * Microvm vm = Microvm.builder()
 *         .memoryMib(256).vcpus(2)
 *         .kernel(Path.of("vmlinux")).initrd(Path.of("initramfs.cpio")).cmdline("console=ttyS0")
 *         .device(DeviceSpec.pio(0x700, 4, () -> new MyPorts()))
 *         .build();
 * }</pre>
 *
 * <p>Virtio devices ({@link #virtioBlk}, {@link #rootDevice}, {@link #virtioConsole}, {@link #virtioRng},
 * {@link #vsock}, {@link #virtioNet}, {@link #virtioMmioTransport}) each take the next of microvm's eight virtio-mmio transports, in the
 * order they are added.
 *
 * <p>Toggles, with microvm's meaning: {@code pic}, {@code pit} (AUTO: on), {@code rtc} (AUTO: off,
 * since the machine always runs on KVM), {@code isaSerial} (on), {@code autoKernelCmdline} (on:
 * appends {@code virtio_mmio.device=512@0x<base>:<irq>} for each virtio-mmio transport in use).
 *
 * <p><b>Errors.</b> {@link #validate()} checks the configuration on any machine, without /dev/kvm:
 * files, the kernel's format, memory size, vCPU count, toggles that cannot go together, IRQs and
 * device windows that collide, the command line. It throws {@link ConfigException}, which names the
 * setting. {@link #build()} is {@code validate()}, then the checks that need the host and the images
 * in guest memory (the kernel's segments, whether kernel and initrd fit, the kernel's command line
 * limit: {@link ConfigException} too), then creation; what the host cannot do (no KVM, no permission,
 * its memory or vCPU limit, a failed KVM call) is a {@link HostException}. Both are
 * {@link MicrovmException}s; a failed {@code build()} leaves nothing open.
 */
public final class MicrovmBuilder {
    public static final long DEFAULT_MEMORY_MIB = 128;
    /** ISA IRQs of the built-in devices. */
    static final int IRQ_PIT = 0, IRQ_KEYBOARD = 1, IRQ_SERIAL = 4, IRQ_RTC = 8;

    private String name = "microvm";
    private long memoryMib = DEFAULT_MEMORY_MIB;
    private int vcpus = 1;
    private Path kernel;
    private Path initrd;
    private String cmdline = "";
    private InputStream serialInput;
    private Fd serialInputFd;
    private OutputStream serialOutput;
    private OnOffAuto pic = OnOffAuto.AUTO;
    private OnOffAuto pit = OnOffAuto.AUTO;
    private OnOffAuto rtc = OnOffAuto.AUTO;
    private OnOffAuto pci = OnOffAuto.AUTO;
    private boolean isaSerial = true;
    private boolean autoKernelCmdline = true;
    private boolean strictMmio;
    private IrqchipMode irqchip = IrqchipMode.SPLIT;
    private final List<DeviceSpec> devices = new ArrayList<>();
    private final List<Virtio> virtioTransports = new ArrayList<>();
    private final List<PciWiring.Ivshmem> ivshmems = new ArrayList<>();
    private final List<VfioPlatform> vfios = new ArrayList<>();
    /** GSIs past the first of each VFIO-platform device, by who wants them (set in the build's copy). */
    private final Map<Integer, String> extraIrqs = new TreeMap<>();
    /** This is the build's copy, whose {@link #devices} hold the opened VFIO-platform devices. */
    private boolean vfiosOpened;
    private OnOffAuto deviceTree = OnOffAuto.AUTO;
    /** The device tree's platform devices, once the VFIO-platform backends are open. */
    private final List<X86DeviceTree.PlatformDevice> treeDevices = new ArrayList<>();
    /** GSIs of level-triggered VFIO-platform interrupts, which the MP table describes as such. */
    private final Set<Integer> levelGsis = new TreeSet<>();
    /** The platform create() is building on, for the VFIO devices' registration with KVM. */
    private KvmPlatform building;

    /** A VFIO-platform device: opened by build(), so that configuring opens nothing. */
    private record VfioPlatform(String label, Supplier<? extends PlatformDeviceBackend> backend, long guestAddress, int irq,
                                VfioPlatformOptions options) {}

    /** What serves a virtio-mmio transport, and the setting that added it (errors name it). */
    private sealed interface Virtio {
        String field();
    }

    private record CustomTransport(Function<DeviceContext, Device> factory) implements Virtio {
        public String field() {
            return "virtioMmioTransport";
        }
    }

    /** A virtio-blk disk; {@code label} names it in errors, {@code root} adds root=/dev/vdX. */
    private record Drive(String field, String label, Path image, BlkOptions options, boolean root) implements Virtio {}

    /** A virtio console port: the machine's console ({@link Microvm#console()}), or one on streams of its own. */
    private record ConsolePort(boolean machineConsole, InputStream in, OutputStream out) implements Virtio {
        public String field() {
            return "virtioConsole";
        }
    }

    private record Rng(VirtioRng.RateLimit limit) implements Virtio {
        public String field() {
            return "virtioRng";
        }
    }

    /** The vsock device: the guest's CID, and the Unix socket of Firecracker's protocol (null: none). */
    private record VsockDevice(long guestCid, Path udsPath) implements Virtio {
        public String field() {
            return "vsock";
        }
    }

    /** A virtio-net interface; {@code field} is the setting that added it ({@code "virtioNet"}, {@code "network-interfaces"}). */
    private record Net(String field, NetworkInterface iface) implements Virtio {
        String label() {
            return "network interface '" + iface.id() + "'";
        }
    }

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

    /**
     * Where the serial port's host input comes from (null: none). A Kindling thread reads it and the
     * guest gets the bytes as it takes them; the stream is not closed. On {@link Microvm#close()} that
     * thread is interrupted, which ends a read in an interruptible stream (a pipe's, a channel's). A
     * read that ignores interrupts keeps the thread until it returns, and what it returns is dropped.
     * {@code System.in} is such a stream, so it is read as {@link #serialInputFromStdin()} does: through
     * poll(2) on descriptor 0, which close() ends at once, leaving later input to the next reader.
     * Without the serial port ({@code isaSerial(false)}), this is the input of the virtio console that
     * {@link #virtioConsole()} adds.
     */
    public MicrovmBuilder serialInput(InputStream in) {
        if (in == System.in) {
            return serialInputFromStdin();
        }
        this.serialInput = in;
        this.serialInputFd = null;
        return this;
    }

    /**
     * The serial port's host input is this process's standard input (descriptor 0), read directly
     * through poll(2) rather than {@code System.in}: {@link Microvm#close()} ends the read at once, and
     * input that arrives afterwards stays unread for the next reader. Does not change the terminal's
     * mode.
     */
    public MicrovmBuilder serialInputFromStdin() {
        return serialInputFd(Fd.borrow(0, "standard input"));
    }

    /** As {@link #serialInputFromStdin()} for another descriptor, which stays the caller's. */
    MicrovmBuilder serialInputFd(Fd fd) {
        this.serialInputFd = Objects.requireNonNull(fd, "fd");
        this.serialInput = null;
        return this;
    }

    /**
     * Where the guest's console output goes besides {@link Microvm#console()} (null: only there): the
     * serial port's, and that of the virtio console {@link #virtioConsole()} adds.
     */
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
    /**
     * The PCI host bridge (configuration ports 0xcf8-0xcff, BARs in the MMIO hole): {@code AUTO}, the
     * default, has it only when a PCI device ({@link #ivshmem}) is added, so a machine without one
     * exposes what it did before; {@code ON} has it in any case; {@code OFF} refuses PCI devices.
     */
    public MicrovmBuilder pci(OnOffAuto value) {
        this.pci = Objects.requireNonNull(value, "pci");
        return this;
    }

    /**
     * The flattened device tree that tells a Linux guest of its VFIO-platform devices
     * ({@link X86DeviceTree}, in {@code setup_data}; the kernel needs {@code CONFIG_OF}):
     * {@code AUTO}, the default, has one when a VFIO-platform device is added; {@code ON} in any case;
     * {@code OFF} never (a guest that finds its devices on its own). With a device tree the kernel
     * boots through the Linux 64-bit entry, PVH having no place for it, and each device needs a
     * {@code compatible} (the host's, or {@link VfioPlatformOptions#withCompatible}).
     */
    public MicrovmBuilder deviceTree(OnOffAuto value) {
        this.deviceTree = Objects.requireNonNull(value, "deviceTree");
        return this;
    }

    private boolean hasDeviceTree() {
        return deviceTree == OnOffAuto.ON || deviceTree == OnOffAuto.AUTO && !vfios.isEmpty();
    }

    /**
     * Adds an ivshmem-plain PCI device whose BAR2 is {@code shared}: the guest, the caller (through
     * {@link IvshmemMemory#segment()}) and other VMs given the same memory see one memory. No doorbell.
     * The memory stays the caller's: close it after the microVM.
     */
    public MicrovmBuilder ivshmem(IvshmemMemory shared) {
        ivshmems.add(new PciWiring.Plain(shared));
        return this;
    }

    /** {@link #ivshmemServer(Path, boolean)} with MSI-X, as QEMU's ivshmem-doorbell by default. */
    public MicrovmBuilder ivshmemServer(Path socket) {
        return ivshmemServer(socket, true);
    }

    /**
     * Adds an ivshmem-doorbell PCI device that joins the ivshmem server at {@code socket} at build time
     * (QEMU's protocol: {@link dev.kindling.devices.ivshmem.IvshmemServer}): BAR2 is the server's
     * shared memory, the guest rings other peers' doorbells and gets theirs as interrupts, one vector
     * per eventfd the server gives, by MSI-X or ({@code msix} false) the legacy INTA# line.
     */
    public MicrovmBuilder ivshmemServer(Path socket, boolean msix) {
        ivshmems.add(new PciWiring.Server(socket, msix));
        return this;
    }

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
     * Adds a device of the caller's at the window {@code spec} gives, made by its factory once the
     * machine exists; the machine closes it. See {@link DeviceSpec#pio} and {@link DeviceSpec#mmio}.
     */
    public MicrovmBuilder device(DeviceSpec spec) {
        devices.add(Objects.requireNonNull(spec, "spec"));
        return this;
    }

    /**
     * Passes the host platform device at {@code sysfsDevice} (e.g. {@code /sys/bus/platform/devices/fff51000.ethernet},
     * bound to vfio-platform) to the guest, as QEMU's vfio-platform does: its regions one after
     * another from {@code guestAddress} (page-aligned, in the 32-bit MMIO hole below 4 GiB), each at a page
     * boundary, and its interrupts on GSIs {@code irq}, {@code irq + 1}, ... The device is opened by
     * {@link #build()}; a machine without VFIO fails there, naming what is missing. A Linux guest
     * learns of the device from the device tree ({@link #deviceTree(OnOffAuto)}): see the README.
     */
    public MicrovmBuilder vfioPlatform(Path sysfsDevice, long guestAddress, int irq, VfioPlatformOptions options) {
        Objects.requireNonNull(sysfsDevice, "sysfsDevice");
        return vfioPlatform("vfio-platform " + sysfsDevice, () -> VfioPlatformBackend.open(sysfsDevice), guestAddress,
                irq, options);
    }

    /**
     * As {@link #vfioPlatform(Path, long, int, VfioPlatformOptions)}, for a platform device behind the
     * caller's backend (made by {@code backend} at build(); the machine closes it).
     */
    public MicrovmBuilder vfioPlatform(String label, Supplier<? extends PlatformDeviceBackend> backend, long guestAddress,
                                       int irq, VfioPlatformOptions options) {
        vfios.add(new VfioPlatform(Objects.requireNonNull(label, "label"), Objects.requireNonNull(backend, "backend"),
                guestAddress, irq, Objects.requireNonNull(options, "options")));
        return this;
    }

    /**
     * Adds a device behind the next free virtio-mmio transport: transport {@code i} is 512 bytes at
     * {@code 0xd0000000 + i * 0x200} with IRQ {@code 5 + i}, in the order they are added. The factory
     * gets the transport's {@link DeviceContext}, named {@code virtio-mmio<i>}, whose
     * {@link DeviceContext#irq()} is IRQ {@code 5 + i}.
     */
    public MicrovmBuilder virtioMmioTransport(Function<DeviceContext, Device> factory) {
        virtioTransports.add(new CustomTransport(Objects.requireNonNull(factory)));
        return this;
    }

    /** A writable virtio-blk disk without a serial: {@link #virtioBlk(Path, BlkOptions)}. */
    public MicrovmBuilder virtioBlk(Path image) {
        return virtioBlk(image, BlkOptions.defaults());
    }

    /**
     * Adds a virtio-blk disk backed by {@code image} (a raw image file or a block device) on the next
     * virtio-mmio transport; the guest names disks {@code vda}, {@code vdb}, ... in the order they are
     * added. The image is opened, and locked, by {@link #build()}: shared when read-only, exclusive
     * when writable. {@link #validate()} checks that it exists, is readable, and is writable unless
     * {@link BlkOptions#readOnly()}; and that no writable image is given twice.
     */
    public MicrovmBuilder virtioBlk(Path image, BlkOptions options) {
        return drive("virtioBlk", "virtio-blk disk", image, options, false);
    }

    /**
     * As {@link #virtioBlk(Path, BlkOptions)}, and the guest's root file system, as Firecracker's root
     * device: appends {@code root=/dev/vdX} (X after the disk's place among the disks) and {@code ro}
     * or {@code rw} to the command line. One root device at most; the command line must have no
     * {@code root=} of its own.
     */
    public MicrovmBuilder rootDevice(Path image, BlkOptions options) {
        return drive("rootDevice", "root device", image, options, true);
    }

    /** A disk from the JSON {@code drives} section: errors name the field {@code "drives"} and the drive id. */
    MicrovmBuilder jsonDrive(String driveId, Path image, boolean readOnly, boolean root) {
        return drive("drives", "drive '" + driveId + "'", image, BlkOptions.defaults().withReadOnly(readOnly), root);
    }

    private MicrovmBuilder drive(String field, String label, Path image, BlkOptions options, boolean root) {
        Objects.requireNonNull(image, "image");
        Objects.requireNonNull(options, "options");
        virtioTransports.add(new Drive(field, label, image, options, root));
        return this;
    }

    /**
     * Adds a virtio console port that is the machine's console, as the serial port is: the guest's
     * output on it (with {@code console=hvc0}, the kernel's and init's) reaches {@link Microvm#console()}
     * and the {@link #serialOutput} stream. Without the ISA serial port ({@code isaSerial(false)}), the
     * port also gets the console's input: {@link Console#send} and the {@link #serialInput} stream. At
     * most one such port.
     */
    public MicrovmBuilder virtioConsole() {
        virtioTransports.add(new ConsolePort(true, null, null));
        return this;
    }

    /**
     * Adds a virtio console port of its own, apart from {@link Microvm#console()}: the guest reads
     * what {@code in} gives (null: nothing) and its output goes to {@code out} (null: dropped). The
     * streams stay the caller's.
     */
    public MicrovmBuilder virtioConsole(InputStream in, OutputStream out) {
        virtioTransports.add(new ConsolePort(false, in, out));
        return this;
    }

    /**
     * Adds a virtio-vsock device for guest CID {@code guestCid} (3 and up): {@link Microvm#vsock()}
     * connects to the guest's ports and listens for its connections. One per microVM.
     */
    public MicrovmBuilder vsock(long guestCid) {
        virtioTransports.add(new VsockDevice(guestCid, null));
        return this;
    }

    /**
     * As {@link #vsock(long)}, also speaking Firecracker's host Unix-socket protocol on {@code udsPath}
     * (which must not exist yet): host clients send {@code CONNECT <port>\n} there, and the guest's
     * connections to port P reach a listener at {@code <udsPath>_P}. See {@link Vsock}.
     */
    public MicrovmBuilder vsock(long guestCid, Path udsPath) {
        virtioTransports.add(new VsockDevice(guestCid, Objects.requireNonNull(udsPath, "udsPath")));
        return this;
    }

    /**
     * Adds a virtio-net interface ({@code eth0}, {@code eth1}, ... in the guest, in the order added)
     * on the backend {@code iface} names, opened at build time and closed with the microVM.
     */
    public MicrovmBuilder virtioNet(NetworkInterface iface) {
        virtioTransports.add(new Net("virtioNet", Objects.requireNonNull(iface, "iface")));
        return this;
    }

    /** An interface from the JSON {@code network-interfaces} section: errors name that field and the interface id. */
    MicrovmBuilder jsonNet(NetworkInterface iface) {
        virtioTransports.add(new Net("network-interfaces", Objects.requireNonNull(iface, "iface")));
        return this;
    }

    /** Adds a virtio entropy device ({@code /dev/hwrng} in the guest), fed from {@link SecureRandom}. */
    public MicrovmBuilder virtioRng() {
        virtioTransports.add(new Rng(null));
        return this;
    }

    /** As {@link #virtioRng()}, giving the guest at most {@code limit}'s bytes per second (and burst). */
    public MicrovmBuilder virtioRng(VirtioRng.RateLimit limit) {
        virtioTransports.add(new Rng(Objects.requireNonNull(limit, "limit")));
        return this;
    }

    /**
     * Applies a Firecracker-style JSON configuration file ({@link JsonConfig}); one whose interfaces
     * name in-process switches needs {@link JsonConfig#applyTo(MicrovmBuilder, Function)}.
     */
    public MicrovmBuilder config(Path json) {
        JsonConfig.read(json).applyTo(this);
        return this;
    }

    // ---- checks that need no host

    private record Plan(boolean pic, boolean pit, boolean rtc, boolean pci, long ramBytes, List<IoMapEntry> fixedWindows,
                        CmdLine cmd, byte[] kernelImage, byte[] initrdImage) {}

    /**
     * Checks the configuration without /dev/kvm, on any machine: the files exist and are readable, the
     * kernel is an ELF or a bzImage, memory and vCPU count are possible, the toggles go together, no
     * two devices want one IRQ or overlapping addresses, the virtio devices fit the eight transports,
     * disk images are files or block devices that can be read (and written, unless read-only), no
     * writable image backs two disks, there is one root device and one machine console port at most,
     * one vsock device with a guest CID of 3 and up whose socket path is free, in a directory and short
     * enough, network interfaces with ids, MACs (unicast) and taps of their own, and the command line
     * is valid.
     *
     * @throws ConfigException naming the first setting at fault
     */
    public void validate() {
        plan(true);
    }

    /** The command line the guest would get, with the automatic entries; {@link #validate()} first. */
    String effectiveCmdline() {
        return plan(true).cmd().toString();
    }

    /** The checked configuration; without {@code withKernel} (a restore: the kernel is in memory), no images. */
    private Plan plan(boolean withKernel) {
        if (withKernel && kernel == null) {
            throw new ConfigException("kernel", "no kernel: call kernel(path)");
        }
        if (withKernel) {
            requireReadable("kernel", kernel);
        }
        if (withKernel && initrd != null) {
            requireReadable("initrd", initrd);
        }
        if (memoryMib < 1) {
            throw new ConfigException("memoryMib", "memory must be at least 1 MiB, got " + memoryMib + " MiB");
        }
        long ramBytes;
        try {
            ramBytes = Math.multiplyExact(memoryMib, 1L << 20);
            MicrovmLayout.checkRamSize(ramBytes);
        } catch (ArithmeticException | BootException e) {
            throw new ConfigException("memoryMib", "memory of " + memoryMib + " MiB is not possible: " + e.getMessage());
        }
        if (vcpus < 1) {
            throw new ConfigException("vcpus", "vCPU count must be at least 1, got " + vcpus);
        }
        if (vcpus > MpTable.MAX_CPUS) {
            throw new ConfigException("vcpus", "vCPU count " + vcpus + " is above the limit of " + MpTable.MAX_CPUS
                    + " (the MP table's)");
        }
        boolean picOn = pic.resolve(true);
        if (!picOn && irqchip == IrqchipMode.KERNEL) {
            throw new ConfigException("pic", "pic=off needs irqchip(SPLIT): KVM's in-kernel irqchip always has a PIC");
        }
        boolean pitOn = pit.resolve(true);
        boolean rtcOn = rtc.resolve(false);
        if (virtioTransports.size() > MicrovmLayout.VIRTIO_MAX_TRANSPORTS) {
            throw new ConfigException(virtioTransports.get(MicrovmLayout.VIRTIO_MAX_TRANSPORTS).field(),
                    virtioTransports.size() + " virtio-mmio devices, but microvm has "
                    + MicrovmLayout.VIRTIO_MAX_TRANSPORTS + " transports");
        }
        List<Drive> drives = checkVirtioDevices();
        boolean pciOn = PciWiring.check(pci, ivshmems);
        checkIrqs(pitOn, rtcOn);
        List<IoMapEntry> fixed = new ArrayList<>(fixedWindows(picOn, pitOn, rtcOn));
        if (pciOn) {
            fixed.addAll(PciWiring.windows(ramBytes));
        }
        checkWindows(fixed, ramBytes);
        CmdLine cmd;
        try {
            cmd = CmdLine.of(cmdline);
            if (autoKernelCmdline) {
                for (int i = 0; i < virtioTransports.size(); i++) {
                    cmd.appendVirtioMmioDevice(transportBase(i), MicrovmLayout.VIRTIO_IRQ_BASE + i);
                }
            }
        } catch (IllegalArgumentException | BootException e) {
            throw new ConfigException("cmdline", "command line: " + e.getMessage(), e);
        }
        appendRoot(cmd, drives);
        if (!withKernel) {
            return new Plan(picOn, pitOn, rtcOn, pciOn, ramBytes, fixed, cmd, null, null);
        }
        byte[] kernelImage = read("kernel", kernel);
        try {
            KernelLoader.forImage(kernelImage);
        } catch (BootException e) {
            throw new ConfigException("kernel", kernel + ": " + e.getMessage(), e);
        }
        byte[] initrdImage = initrd == null ? null : read("initrd", initrd);
        if (initrdImage != null && initrdImage.length == 0) {
            throw new ConfigException("initrd", "initrd " + initrd + " is empty");
        }
        return new Plan(picOn, pitOn, rtcOn, pciOn, ramBytes, fixed, cmd, kernelImage, initrdImage);
    }

    /** The disks' images and options, one root and one machine console at most; returns the disks in order. */
    private List<Drive> checkVirtioDevices() {
        List<Drive> drives = new ArrayList<>();
        Drive root = null;
        ConsolePort machineConsole = null;
        VsockDevice vsock = null;
        List<Net> nets = new ArrayList<>();
        for (Virtio v : virtioTransports) {
            if (v instanceof VsockDevice vs) {
                checkVsock(vs, vsock);
                vsock = vs;
            }
            if (v instanceof Net n) {
                checkNet(n, nets);
                nets.add(n);
            }
            if (v instanceof ConsolePort c && c.machineConsole()) {
                if (machineConsole != null) {
                    throw new ConfigException("virtioConsole", "virtioConsole() given twice: one virtio console port"
                            + " can be the machine's console; give the others streams of their own");
                }
                machineConsole = c;
            }
            if (!(v instanceof Drive d)) {
                continue;
            }
            checkImage(d);
            for (Drive other : drives) {
                if ((!d.options().readOnly() || !other.options().readOnly()) && sameFile(d.image(), other.image())) {
                    throw new ConfigException(d.field(), d.label() + " and " + other.label() + " both use " + d.image()
                            + "; an image written by one disk can be attached only once");
                }
            }
            if (d.root()) {
                if (root != null) {
                    throw new ConfigException(d.field(), d.label() + " and " + root.label()
                            + " are both root devices; there can be one");
                }
                root = d;
            }
            drives.add(d);
        }
        return drives;
    }

    private static void checkVsock(VsockDevice v, VsockDevice earlier) {
        if (earlier != null) {
            throw new ConfigException("vsock", "vsock given twice: a microVM has one vsock device");
        }
        if (v.guestCid() < 3 || v.guestCid() >= 0xFFFF_FFFFL) {
            throw new ConfigException("vsock", "guest CID " + v.guestCid()
                    + " is reserved (0-2 are the hypervisor's, the local and the host's) or too large: use 3 to 4294967294");
        }
        Path uds = v.udsPath();
        if (uds == null) {
            return;
        }
        if (Files.exists(uds, LinkOption.NOFOLLOW_LINKS)) {
            throw new ConfigException("vsock", "vsock uds_path " + uds + " already exists; remove it, or choose another path");
        }
        Path parent = uds.toAbsolutePath().getParent();
        if (parent == null || !Files.isDirectory(parent)) {
            throw new ConfigException("vsock", "vsock uds_path " + uds + ": directory " + parent + " does not exist");
        }
        // sun_path holds 108 bytes with its NUL; <uds_path>_<port> adds up to 11
        if (uds.toString().getBytes(StandardCharsets.UTF_8).length + 11 > 107) {
            throw new ConfigException("vsock", "vsock uds_path " + uds + " is too long for a Unix socket with a _<port> suffix"
                    + " (at most 96 bytes)");
        }
    }

    /** The tap's name is one Linux takes, the MAC is unicast, and no id, MAC or tap is an earlier interface's. */
    private static void checkNet(Net n, List<Net> earlier) {
        NetworkInterface iface = n.iface();
        String tap = iface.backend() instanceof NetworkInterface.Backend.Tap t ? t.hostDevName() : null;
        if (tap != null) {
            try {
                Tun.checkName(tap);
            } catch (IllegalArgumentException e) {
                throw new ConfigException(n.field(), n.label() + ": " + e.getMessage());
            }
        }
        MacAddress mac = iface.mac().orElse(null);
        if (mac != null && mac.isMulticast()) {
            throw new ConfigException(n.field(), n.label() + ": guest MAC " + mac
                    + " is a multicast address; an interface needs a unicast one (first octet even)");
        }
        for (Net other : earlier) {
            if (other.iface().id().equals(iface.id())) {
                throw new ConfigException(n.field(), "network interface id '" + iface.id() + "' is given twice");
            }
            if (mac != null && other.iface().mac().equals(iface.mac())) {
                throw new ConfigException(n.field(), n.label() + ": guest MAC " + mac + " is " + other.label()
                        + "'s already");
            }
            if (tap != null && other.iface().backend().equals(iface.backend())) {
                throw new ConfigException(n.field(), n.label() + ": tap " + tap + " is " + other.label()
                        + "'s already; each interface needs a tap of its own");
            }
        }
    }

    private static void checkImage(Drive d) {
        Path p = d.image();
        if (!Files.exists(p)) {
            throw new ConfigException(d.field(), d.label() + ": image " + p + " does not exist");
        }
        if (Files.isDirectory(p)) {
            throw new ConfigException(d.field(), d.label() + ": image " + p + " is a directory");
        }
        int mode;
        try {
            mode = (Integer) Files.getAttribute(p, "unix:mode");
        } catch (IOException | UnsupportedOperationException e) {
            throw new ConfigException(d.field(), d.label() + ": cannot inspect image " + p + ": " + e.getMessage(), e);
        }
        int type = mode & S_IFMT;
        if (type != S_IFREG && type != S_IFBLK) {
            throw new ConfigException(d.field(), d.label() + ": image " + p + " is neither a file nor a block device");
        }
        // root may read and write a file without permission bits; such a file is still not meant for it
        if (!Files.isReadable(p) || (mode & 0444) == 0) {
            throw new ConfigException(d.field(), d.label() + ": image " + p + " is not readable");
        }
        if (!d.options().readOnly() && (!Files.isWritable(p) || (mode & 0222) == 0)) {
            throw new ConfigException(d.field(), d.label() + ": image " + p
                    + " is read-only (no write permission): attach it read-only");
        }
    }

    private static final int S_IFMT = 0170000, S_IFREG = 0100000, S_IFBLK = 0060000;

    private static boolean sameFile(Path a, Path b) {
        try {
            return Files.isSameFile(a, b);
        } catch (IOException e) {
            return a.toAbsolutePath().normalize().equals(b.toAbsolutePath().normalize());
        }
    }

    /** The root device's {@code root=/dev/vdX ro|rw}, as Firecracker adds it. */
    private static void appendRoot(CmdLine cmd, List<Drive> drives) {
        for (int i = 0; i < drives.size(); i++) {
            Drive d = drives.get(i);
            if (!d.root()) {
                continue;
            }
            for (String arg : cmd.toString().split(" ")) {
                if (arg.startsWith("root=")) {
                    throw new ConfigException(d.field(), d.label() + ": the command line has " + arg
                            + " of its own; drop it, or attach the disk as a plain virtio-blk disk");
                }
            }
            try {
                cmd.append("root=/dev/vd" + (char) ('a' + i) + (d.options().readOnly() ? " ro" : " rw"));
            } catch (BootException e) {
                throw new ConfigException("cmdline", "command line: " + e.getMessage(), e);
            }
        }
    }

    private void checkIrqs(boolean pitOn, boolean rtcOn) {
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
        // functions share the four INTx pins, as on any PCI bus
        PciWiring.interrupts(ivshmems).stream().mapToInt(MpTable.PciInterrupt::ioapicPin).distinct()
                .forEach(pin -> claim(irqs, pin, "PCI INTx"));
        for (DeviceSpec d : devices) {
            if (d.irq().isPresent()) {
                claim(irqs, d.irq().getAsInt(), d.describe());
            }
        }
        extraIrqs.forEach((irq, who) -> claim(irqs, irq, who));
    }

    private static void claim(Map<Integer, String> irqs, int irq, String who) {
        if (irq < 0 || irq >= MicrovmLayout.IOAPIC_PINS) {
            throw new ConfigException("irq", who + " wants IRQ " + irq + ", but the IOAPIC has pins 0.."
                    + (MicrovmLayout.IOAPIC_PINS - 1));
        }
        String other = irqs.putIfAbsent(irq, who);
        if (other != null) {
            throw new ConfigException("irq", "IRQ " + irq + " is wanted by both " + other + " and " + who);
        }
    }

    /** The windows of the machine's own devices and of the transports, with who answers them. */
    private List<IoMapEntry> fixedWindows(boolean picOn, boolean pitOn, boolean rtcOn) {
        List<IoMapEntry> w = new ArrayList<>();
        IoMapEntry.Owner chips = irqchip == IrqchipMode.KERNEL ? IoMapEntry.Owner.KVM : IoMapEntry.Owner.KINDLING;
        if (picOn) {
            w.add(pio(Pic8259.MASTER_BASE, 2, "pic-master", chips));
            w.add(pio(Pic8259.SLAVE_BASE, 2, "pic-slave", chips));
            w.add(pio(Pic8259.ELCR_BASE, 2, "elcr", chips));
        }
        if (pitOn) {
            w.add(pio(Pit8254.BASE, Pit8254.LENGTH, "pit", chips));
            w.add(pio(Pit8254.SPEAKER_PORT, 1, chips == IoMapEntry.Owner.KVM ? "pit-speaker" : "pit-port61", chips));
        }
        w.add(pio(I8042.DATA_PORT, 1, "i8042-data", IoMapEntry.Owner.KINDLING));
        w.add(pio(I8042.COMMAND_PORT, 1, "i8042-cmd", IoMapEntry.Owner.KINDLING));
        if (rtcOn) {
            w.add(pio(Rtc.BASE, Rtc.LENGTH, "rtc", IoMapEntry.Owner.KINDLING));
        }
        if (isaSerial) {
            w.add(pio(Serial16550.COM1_BASE, Serial16550.LENGTH, "serial0", IoMapEntry.Owner.KINDLING));
        }
        w.add(new IoMapEntry(AddressSpace.MMIO, IoApic.BASE, IoApic.LENGTH, "ioapic", chips));
        w.add(new IoMapEntry(AddressSpace.MMIO, MicrovmLayout.LAPIC_ADDRESS, 0x1000, "local-apic", IoMapEntry.Owner.KVM));
        for (int i = 0; i < virtioTransports.size(); i++) {
            w.add(new IoMapEntry(AddressSpace.MMIO, transportBase(i), MicrovmLayout.VIRTIO_MMIO_SIZE,
                    "virtio-mmio transport " + i, IoMapEntry.Owner.KINDLING));
        }
        return w;
    }

    private static IoMapEntry pio(long base, long length, String name, IoMapEntry.Owner owner) {
        return new IoMapEntry(AddressSpace.PIO, base, length, name, owner);
    }

    /**
     * The caller's windows fit their bus, stay off RAM (KVM would never let an access reach them) and
     * overlap nothing; no two devices share a name (their contexts and threads go by it).
     */
    private void checkWindows(List<IoMapEntry> fixed, long ramBytes) {
        List<IoMapEntry> taken = new ArrayList<>(fixed);
        Set<String> names = new HashSet<>();
        for (int i = 0; i < virtioTransports.size(); i++) {
            names.add("virtio-mmio" + i);
        }
        for (DeviceSpec d : devices) {
            if (!names.add(d.name())) {
                throw new ConfigException("device", d.describe() + ": another device is named " + d.name());
            }
            long limit = d.space() == AddressSpace.PIO ? 0x10000 : 1L << 52;
            if (d.length() < 1 || d.base() < 0 || d.base() > limit - d.length()) {
                throw new ConfigException("device", d.describe() + ": window of 0x" + Long.toHexString(d.length())
                        + " bytes does not fit the " + d.space().name().toLowerCase(Locale.ROOT) + " space (up to 0x"
                        + Long.toHexString(limit) + ")");
            }
            IoMapEntry mine = new IoMapEntry(d.space(), d.base(), d.length(), d.describe(), IoMapEntry.Owner.KINDLING);
            if (d.space() == AddressSpace.MMIO) {
                for (AddressRange ram : MicrovmLayout.ramRanges(ramBytes)) {
                    if (ram.overlaps(new AddressRange(d.base(), d.length()))) {
                        throw new ConfigException("device", d.describe() + " is inside guest RAM " + ram);
                    }
                }
            }
            for (IoMapEntry t : taken) {
                if (t.space() == mine.space() && mine.base() < t.base() + t.length() && t.base() < mine.base() + mine.length()) {
                    throw new ConfigException("device", mine.device() + " (0x" + Long.toHexString(mine.length())
                            + " bytes) overlaps " + t.device() + " at 0x" + Long.toHexString(t.base()));
                }
            }
            taken.add(mine);
        }
    }

    private static void requireReadable(String field, Path path) {
        if (!Files.isRegularFile(path)) {
            throw new ConfigException(field, field + " " + path + " does not exist or is not a file");
        }
        if (!Files.isReadable(path)) {
            throw new ConfigException(field, field + " " + path + " is not readable");
        }
    }

    private static byte[] read(String field, Path path) {
        try {
            return Files.readAllBytes(path);
        } catch (IOException e) {
            throw new ConfigException(field, "cannot read " + field + " " + path + ": " + e.getMessage(), e);
        }
    }

    private static long transportBase(int i) {
        return MicrovmLayout.VIRTIO_MMIO_BASE + (long) i * MicrovmLayout.VIRTIO_MMIO_SIZE;
    }

    // ---- snapshots

    /** A copy of this configuration with lists of its own, as a snapshot keeps it. */
    MicrovmBuilder copy() {
        MicrovmBuilder b = new MicrovmBuilder();
        b.name = name;
        b.memoryMib = memoryMib;
        b.vcpus = vcpus;
        b.kernel = kernel;
        b.initrd = initrd;
        b.cmdline = cmdline;
        b.serialInput = serialInput;
        b.serialInputFd = serialInputFd;
        b.serialOutput = serialOutput;
        b.pic = pic;
        b.pit = pit;
        b.rtc = rtc;
        b.isaSerial = isaSerial;
        b.autoKernelCmdline = autoKernelCmdline;
        b.strictMmio = strictMmio;
        b.irqchip = irqchip;
        b.devices.addAll(devices);
        b.virtioTransports.addAll(virtioTransports);
        b.pci = pci;
        b.ivshmems.addAll(ivshmems);
        b.vfios.addAll(vfios);
        b.extraIrqs.putAll(extraIrqs);
        b.vfiosOpened = vfiosOpened;
        b.deviceTree = deviceTree;
        b.treeDevices.addAll(treeDevices);
        b.levelGsis.addAll(levelGsis);
        return b;
    }

    /** Throws naming the first device a snapshot cannot carry: the caller's own devices, network interfaces. */
    void checkSnapshottable() {
        if (!vfios.isEmpty()) {
            throw new SnapshotException("VFIO-platform devices cannot be snapshotted: the host device's state is not Kindling's");
        }
        if (!ivshmems.isEmpty() || pci == OnOffAuto.ON) {
            throw new SnapshotException("PCI devices (ivshmem) cannot be snapshotted");
        }
        if (!devices.isEmpty()) {
            throw new SnapshotException(devices.getFirst().describe() + " is the caller's own device: it cannot be snapshotted");
        }
        for (Virtio v : virtioTransports) {
            switch (v) {
                case CustomTransport c -> throw new SnapshotException("a virtio-mmio transport of the caller's own cannot be snapshotted");
                case Net n -> throw new SnapshotException(n.label() + ": virtio-net cannot be snapshotted yet");
                case ConsolePort port when !port.machineConsole() ->
                        throw new SnapshotException("a virtio console on the caller's streams cannot be snapshotted");
                default -> { }
            }
        }
    }

    /** The writable disks' images, in the order of their devices. */
    List<Path> writableDisks() {
        return virtioTransports.stream().filter(v -> v instanceof Drive d && !d.options().readOnly())
                .map(v -> ((Drive) v).image()).toList();
    }

    /**
     * This configuration for a clone or restore: the writable disks on {@code disks} (in the order of
     * {@link #writableDisks()}), the vsock device with {@code vsockCid} and {@code vsockPath} (null:
     * none), and a console of its own (the snapshot's VM's serial streams are not shared).
     */
    MicrovmBuilder forRestore(String newName, List<Path> disks, long vsockCid, Path vsockPath) {
        MicrovmBuilder b = copy();
        b.name = newName;
        b.serialInput = null;
        b.serialInputFd = null;
        b.serialOutput = null;
        int next = 0;
        for (int i = 0; i < b.virtioTransports.size(); i++) {
            switch (b.virtioTransports.get(i)) {
                case Drive d when !d.options().readOnly() ->
                        b.virtioTransports.set(i, new Drive(d.field(), d.label(), disks.get(next++), d.options(), d.root()));
                case VsockDevice v -> b.virtioTransports.set(i, new VsockDevice(vsockCid > 0 ? vsockCid : v.guestCid(), vsockPath));
                default -> { }
            }
        }
        return b;
    }

    /**
     * Writes what a restore from disk needs of this configuration; the writable disks as
     * {@code diskNames} (files in the snapshot's directory), in the order of {@link #writableDisks()}.
     */
    void writeRecipe(StateWriter out, List<String> diskNames) {
        checkSnapshottable();
        out.putString(name).putLong(memoryMib).putInt(vcpus).putString(cmdline);
        out.putString(kernel == null ? "" : kernel.toString()).putString(initrd == null ? "" : initrd.toString());
        out.putByte(pic.ordinal()).putByte(pit.ordinal()).putByte(rtc.ordinal());
        out.putBoolean(isaSerial).putBoolean(autoKernelCmdline).putBoolean(strictMmio).putByte(irqchip.ordinal());
        out.putInt(virtioTransports.size());
        int next = 0;
        for (Virtio v : virtioTransports) {
            switch (v) {
                case Drive d -> {
                    out.putByte(0).putString(d.field()).putString(d.label());
                    out.putString(d.options().readOnly() ? d.image().toAbsolutePath().toString() : diskNames.get(next++));
                    out.putBoolean(d.options().readOnly()).putString(d.options().serial()).putBoolean(d.root());
                }
                case ConsolePort c -> out.putByte(1);
                case Rng r -> out.putByte(2).putLong(r.limit() == null ? 0 : r.limit().bytesPerSecond())
                        .putLong(r.limit() == null ? 0 : r.limit().burst());
                case VsockDevice vs -> out.putByte(3).putLong(vs.guestCid())
                        .putString(vs.udsPath() == null ? "" : vs.udsPath().toString());
                default -> throw new IllegalStateException("checkSnapshottable let " + v.field() + " through");
            }
        }
    }

    /**
     * Reads {@link #writeRecipe}'s configuration; a writable disk's name is resolved in {@code dir}.
     * The kernel and initrd paths are kept for the record only: a restore does not read them.
     */
    static MicrovmBuilder readRecipe(StateReader in, Path dir) {
        MicrovmBuilder b = new MicrovmBuilder();
        b.name = in.getString();
        b.memoryMib = in.getLong();
        b.vcpus = in.getInt("vCPU count", 1, MpTable.MAX_CPUS);
        b.cmdline = in.getString();
        String k = in.getString();
        String i = in.getString();
        b.kernel = k.isEmpty() ? null : Path.of(k);
        b.initrd = i.isEmpty() ? null : Path.of(i);
        OnOffAuto[] toggles = OnOffAuto.values();
        b.pic = toggles[ordinal(in, toggles.length)];
        b.pit = toggles[ordinal(in, toggles.length)];
        b.rtc = toggles[ordinal(in, toggles.length)];
        b.isaSerial = in.getBoolean();
        b.autoKernelCmdline = in.getBoolean();
        b.strictMmio = in.getBoolean();
        b.irqchip = IrqchipMode.values()[ordinal(in, IrqchipMode.values().length)];
        int count = in.getInt("virtio device count", 0, MicrovmLayout.VIRTIO_MAX_TRANSPORTS);
        for (int n = 0; n < count; n++) {
            int kind = in.getByte();
            b.virtioTransports.add(switch (kind) {
                case 0 -> {
                    String field = in.getString();
                    String label = in.getString();
                    String image = in.getString();
                    boolean readOnly = in.getBoolean();
                    String serial = in.getString();
                    boolean root = in.getBoolean();
                    BlkOptions options;
                    try {
                        options = new BlkOptions(readOnly, serial);
                    } catch (IllegalArgumentException e) {
                        throw in.bad(e.getMessage());
                    }
                    yield new Drive(field, label, readOnly ? Path.of(image) : dir.resolve(image), options, root);
                }
                case 1 -> new ConsolePort(true, null, null);
                case 2 -> {
                    long rate = in.getLong();
                    long burst = in.getLong();
                    yield new Rng(rate == 0 ? null : new VirtioRng.RateLimit(rate, burst));
                }
                case 3 -> {
                    long cid = in.getLong();
                    String uds = in.getString();
                    yield new VsockDevice(cid, uds.isEmpty() ? null : Path.of(uds));
                }
                default -> throw in.bad("virtio device kind " + kind);
            });
        }
        return b;
    }

    private static int ordinal(StateReader in, int count) {
        int v = in.getByte();
        if (v >= count) {
            throw in.bad("an enum value " + v + " of " + count);
        }
        return v;
    }

    String name() {
        return name;
    }

    /** The vsock device's Unix socket path, or null. */
    Path vsockUdsPath() {
        return virtioTransports.stream().filter(v -> v instanceof VsockDevice).map(v -> ((VsockDevice) v).udsPath())
                .filter(java.util.Objects::nonNull).findFirst().orElse(null);
    }

    long memoryBytes() {
        return memoryMib << 20;
    }

    // ---- build

    /**
     * {@link #validate()}, then checks against this host and the images in guest memory, then creates
     * the VM, its devices and boot state. Does not start it. Leaves nothing open if it fails.
     *
     * @throws ConfigException naming the setting at fault
     * @throws HostException when this host cannot run the configuration
     */
    public Microvm build() {
        if (!vfios.isEmpty() && !vfiosOpened) {
            return buildWithVfio();
        }
        Plan plan = plan(true);
        byte[] dtb;
        try {
            dtb = hasDeviceTree() ? X86DeviceTree.build(treeDevices) : null;
        } catch (IllegalArgumentException e) {
            throw new ConfigException("deviceTree", "device tree: " + e.getMessage(), e);
        }
        checkHostMemory(plan.ramBytes());
        GuestMemory memory;
        try {
            memory = MicrovmLayout.anonymousMemory(plan.ramBytes());
        } catch (SyscallException e) {
            throw new HostException("cannot reserve " + memoryMib + " MiB of guest memory: " + e.getMessage(), e);
        }
        DirectBoot.Result boot;
        MpTable.Options mp = new MpTable.Options(
                irqchip == IrqchipMode.SPLIT ? MpTable.IOAPIC_VERSION_QEMU : MpTable.IOAPIC_VERSION_KVM, false, levelGsis,
                plan.pci() ? PciWiring.interrupts(ivshmems) : List.of());
        try {
            checkBoot(plan, memory, mp, dtb);
            boot = DirectBoot.boot(memory, plan.kernelImage(), plan.initrdImage(), dtb, plan.cmd(), vcpus,
                    DirectBoot.Protocol.AUTO, mp);
        } catch (BootException e) {
            memory.close();
            throw new ConfigException("kernel", kernel + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            memory.close();
            throw e;
        }

        return create(plan, memory, boot.protocol(), boot, null);
    }

    /**
     * Opens each VFIO-platform backend, then builds a copy in which each is a device of the caller's
     * with the window its regions take; a backend no device took yet is closed if that fails.
     */
    private Microvm buildWithVfio() {
        MicrovmBuilder b = copy();
        b.vfiosOpened = true;
        record Opened(PlatformDeviceBackend backend, AtomicBoolean taken) {}
        List<Opened> open = new ArrayList<>();
        try {
            for (int n = 0; n < vfios.size(); n++) {
                VfioPlatform v = vfios.get(n);
                PlatformDeviceBackend backend;
                try {
                    backend = Objects.requireNonNull(v.backend().get(), "the backend of " + v.label());
                } catch (RuntimeException e) {
                    throw new ConfigException("vfioPlatform", v.label() + ": " + e.getMessage(), e);
                }
                Opened o = new Opened(backend, new AtomicBoolean());
                open.add(o);
                b.devices.add(vfioDevice(v, backend, n, o.taken(), b.extraIrqs, () -> b.building));
                // else Linux sets the GSI up as the ISA entry says (edge) at boot, before any driver asks
                backend.irqs().stream().filter(PlatformDeviceBackend.Irq::level).forEach(q -> b.levelGsis.add(v.irq() + q.index()));
                if (b.hasDeviceTree()) {
                    b.treeDevices.add(treeDevice(v, backend));
                }
            }
            return b.build();
        } catch (RuntimeException | Error e) {
            for (Opened o : open) {
                if (!o.taken().get()) {
                    o.backend().close();
                }
            }
            throw e;
        }
    }

    /**
     * Tells KVM's VFIO device of the host device's group, as QEMU does for every group, so that KVM
     * honours the guest's cache control for a device whose DMA the IOMMU does not keep coherent.
     */
    private static void registerWithKvm(VfioPlatformBackend host, Vm vm) {
        KvmVfio kvm = KvmVfio.create(vm);
        try {
            kvm.addGroup(host.group());
        } catch (RuntimeException e) {
            kvm.close();
            throw e;
        }
        host.closeBeforeGroup(() -> {
            try {
                kvm.removeGroup(host.group());
            } finally {
                kvm.close();
            }
        });
    }

    /** How the guest's device tree describes {@code v}, open: {@code compatible}, its regions' windows, its GSIs. */
    private static X86DeviceTree.PlatformDevice treeDevice(VfioPlatform v, PlatformDeviceBackend backend) {
        List<String> compatible = v.options().compatible().isEmpty() ? backend.compatible() : v.options().compatible();
        if (compatible.isEmpty()) {
            throw new ConfigException("vfioPlatform", v.label() + " has no compatible for the guest's device tree (the"
                    + " host describes it without one); name it with VfioPlatformOptions.withCompatible, or turn the"
                    + " device tree off");
        }
        List<PlatformDeviceBackend.Region> regions = backend.regions();
        long[] offsets = VfioPlatformDevice.layout(regions);
        List<AddressRange> windows = new ArrayList<>();
        for (int i = 0; i < regions.size(); i++) {
            windows.add(new AddressRange(v.guestAddress() + offsets[i], regions.get(i).size()));
        }
        List<X86DeviceTree.Interrupt> irqs = new ArrayList<>();
        for (PlatformDeviceBackend.Irq q : backend.irqs()) {
            irqs.add(new X86DeviceTree.Interrupt(v.irq() + q.index(), q.level()));
        }
        return new X86DeviceTree.PlatformDevice(compatible, windows, irqs);
    }

    /** The device of the caller's that {@code v} is once open: its window in the 32-bit MMIO hole, its GSIs. */
    private static DeviceSpec vfioDevice(VfioPlatform v, PlatformDeviceBackend backend, int n, AtomicBoolean taken,
                                         Map<Integer, String> extraIrqs, Supplier<KvmPlatform> platform) {
        long window;
        try {
            window = VfioPlatformDevice.windowSize(backend.regions());
        } catch (ArithmeticException e) {
            throw new ConfigException("vfioPlatform", v.label() + ": its regions add up past 2^63 bytes");
        }
        if (window == 0) {
            throw new ConfigException("vfioPlatform", v.label() + " has no regions");
        }
        long at = v.guestAddress();
        if (at % VfioPlatformDevice.PAGE != 0) {
            throw new ConfigException("vfioPlatform", v.label() + ": guest address 0x" + Long.toHexString(at)
                    + " is not page-aligned");
        }
        long start = MicrovmLayout.MMIO_HOLE_START, end = MicrovmLayout.HIGH_RAM_START;
        if (at < start || at >= end || window > end - at) {
            throw new ConfigException("vfioPlatform", v.label() + ": its regions take 0x" + Long.toHexString(window)
                    + " bytes from 0x" + Long.toHexString(at) + ", which does not fit the MMIO hole [0x"
                    + Long.toHexString(start) + ", 0x" + Long.toHexString(end) + ")");
        }
        int irqs = backend.irqs().size();
        for (int i = 1; i < irqs; i++) {
            extraIrqs.put(v.irq() + i, v.label() + " (interrupt " + i + ")");
        }
        Function<DeviceContext, Device> factory = ctx -> {
            taken.set(true); // the device owns the backend from here on, also if it fails
            if (backend instanceof VfioPlatformBackend host) {
                try {
                    registerWithKvm(host, platform.get().vm());
                } catch (RuntimeException e) {
                    host.close();
                    throw e;
                }
            }
            return VfioPlatformDevice.create(ctx, at, v.irq(), backend, v.options());
        };
        return new DeviceSpec(AddressSpace.MMIO, at, window, irqs == 0 ? OptionalInt.empty() : OptionalInt.of(v.irq()),
                factory, "vfio" + n);
    }

    /**
     * Builds this configuration around a snapshot's state instead of booting: memory is a private
     * copy-on-write mapping of {@code memoryFile} (lazily read), the devices and vCPUs take
     * {@code saved}. Not started. Leaves nothing open if it fails.
     */
    Microvm restore(MachineState saved, Fd memoryFile, DirectBoot.Protocol protocol) {
        Plan plan = plan(false);
        GuestMemory memory;
        try {
            memory = MicrovmLayout.privateMemory(memoryFile, plan.ramBytes());
        } catch (RuntimeException e) {
            throw new SnapshotException("cannot map the snapshot's memory: " + e.getMessage(), e);
        }
        return create(plan, memory, protocol, null, saved);
    }

    /** The VM around {@code memory}: booting with {@code boot}, or restoring {@code saved}. */
    private Microvm create(Plan plan, GuestMemory memory, DirectBoot.Protocol protocol, DirectBoot.Result boot,
                           MachineState saved) {
        KvmPlatform platform;
        try {
            platform = KvmPlatform.create(new KvmPlatform.Config(irqchip, irqchip == IrqchipMode.KERNEL && plan.pit()));
            building = platform;
        } catch (RuntimeException e) {
            memory.close();
            throw hostProblem(e);
        }
        int limit;
        try {
            limit = Math.min(platform.maxVcpus(), MpTable.MAX_CPUS);
        } catch (RuntimeException e) {
            platform.close();
            memory.close();
            throw hostProblem(e);
        }
        if (vcpus > limit) {
            platform.close();
            memory.close();
            throw new HostException("vCPU count " + vcpus + " is above the limit of " + limit + " on this host");
        }
        Machine machine;
        try {
            machine = new Machine(name, platform, memory, vcpus, strictMmio); // closes both if it fails
        } catch (RuntimeException e) {
            throw hostProblem(e);
        }
        try {
            Microvm vm = wire(machine, platform, plan, protocol, boot);
            if (saved != null) {
                machine.restoreState(saved);
            }
            return vm;
        } catch (RuntimeException e) {
            try {
                machine.close();
            } catch (RuntimeException closing) {
                e.addSuppressed(closing);
            }
            throw hostProblem(e);
        }
    }

    private static void checkHostMemory(long ramBytes) {
        long host = hostMemoryBytes();
        if (host > 0 && ramBytes > host) {
            throw new HostException("memory of " + (ramBytes >> 20) + " MiB is more than this host has ("
                    + (host >> 20) + " MiB)");
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

    /** The boot checks, one setting at a time, so that the error names the one at fault. */
    private void checkBoot(Plan plan, GuestMemory memory, MpTable.Options mp, byte[] dtb) {
        LoadedKernel k;
        try {
            k = KernelLoader.forImage(plan.kernelImage()).inspect(memory, plan.kernelImage());
            bootCheck(memory, k, new CmdLine(), 0, null);
        } catch (BootException e) {
            throw new ConfigException("kernel", kernel + ": " + e.getMessage(), e);
        }
        try {
            bootCheck(memory, k, plan.cmd(), 0, null);
        } catch (BootException e) {
            throw new ConfigException("cmdline", "command line: " + e.getMessage(), e);
        }
        if (plan.initrdImage() != null) {
            try {
                bootCheck(memory, k, plan.cmd(), plan.initrdImage().length, null);
            } catch (BootException e) {
                throw new ConfigException("initrd", "initrd " + initrd + ": " + e.getMessage(), e);
            }
        }
        if (dtb != null) {
            try {
                bootCheck(memory, k, plan.cmd(), plan.initrdImage() == null ? 0 : plan.initrdImage().length, dtb);
            } catch (BootException e) {
                throw new ConfigException("deviceTree", "device tree: " + kernel + ": " + e.getMessage(), e);
            }
        }
        try {
            MpTable.check(memory, vcpus, mp);
        } catch (BootException e) {
            throw new ConfigException("vcpus", vcpus + " vCPUs: " + e.getMessage(), e);
        }
    }

    /** The checks of the protocol DirectBoot picks: PVH for a PVH kernel without a device tree. */
    private static void bootCheck(GuestMemory memory, LoadedKernel k, CmdLine cmd, long initrdSize, byte[] dtb) {
        if (k.kind() == LoadedKernel.Kind.ELF_PVH && dtb == null) {
            PvhBoot.check(memory, k, cmd, initrdSize);
        } else {
            LinuxBoot.check(memory, k, cmd, initrdSize, dtb);
        }
    }

    /** A failed host call as the one documented exception; anything else (a bug, a user's factory) as is. */
    private static RuntimeException hostProblem(RuntimeException e) {
        if (e instanceof SyscallException s && s.call().equals("open(" + Kvm.DEVICE + ")")) {
            if (s.errno() == Errno.ENOENT) {
                return new HostException(Kvm.DEVICE + " does not exist: this host has no KVM (is virtualization"
                        + " enabled, and the kvm-intel or kvm-amd module loaded?)", e);
            }
            if (s.errno() == Errno.EACCES || s.errno() == Errno.EPERM) {
                return new HostException("no permission to open " + Kvm.DEVICE + " (add the user to its group, usually kvm)", e);
            }
        }
        if (e instanceof SyscallException || e instanceof UnsupportedOperationException) {
            return new HostException("KVM is not usable: " + e.getMessage(), e);
        }
        if (e instanceof SignalInUseException) {
            return new HostException(e.getMessage(), e);
        }
        return e;
    }

    private Microvm wire(Machine machine, KvmPlatform platform, Plan plan, DirectBoot.Protocol protocol,
                         DirectBoot.Result boot) {
        IntFunction<IrqLine> isaLine = platform.interrupts()::line;
        if (irqchip == IrqchipMode.SPLIT) {
            KvmIoapicSink sink = new KvmIoapicSink();
            IoApic ioapic = new IoApic("ioapic", vcpus, sink);
            attach(machine, AddressSpace.MMIO, ioapic.busRanges(), ioapic);
            machine.addStateful("ioapic", ioapic);
            if (plan.pic()) {
                PicWiring wiring = new PicWiring();
                Pic8259 pic = new Pic8259(wiring);
                wiring.connect(pic, platform);
                attach(machine, AddressSpace.PIO, pic.busRanges(), pic);
                machine.addStateful("pic", pic);
                sink.connect(platform, ioapic, pic::line); // ISA IRQs drive both, as on a PC
            } else {
                sink.connect(platform, ioapic, null);
            }
            if (plan.pit()) {
                Pit8254 pit = new Pit8254("pit", isaLine.apply(IRQ_PIT), System::nanoTime);
                attach(machine, AddressSpace.PIO, pit.busRanges(), pit);
                machine.addStateful("pit", pit);
            }
        }

        if (plan.rtc()) {
            Rtc rtc = new Rtc("rtc", isaLine.apply(IRQ_RTC), Clock.systemUTC());
            long low = MicrovmLayout.lowRamSize(plan.ramBytes());
            rtc.setMemorySize(low, plan.ramBytes() - low);
            attach(machine, AddressSpace.PIO, rtc.busRanges(), rtc);
            machine.addStateful("rtc", rtc);
        }
        Console console = new Console(serialOutput);
        Serial16550 serial = null;
        if (isaSerial) {
            PollingInputStream polled = serialInputFd == null ? null : new PollingInputStream(serialInputFd);
            if (polled != null) {
                machine.own(polled); // closed even if the serial port cannot be made
            }
            Serial16550 s = new Serial16550("serial0", isaLine.apply(IRQ_SERIAL), polled != null ? polled : serialInput,
                    console.sink());
            serial = s;
            // the poll ends first, so the serial's reader thread is gone when its close() returns
            attach(machine, AddressSpace.PIO, s.busRanges(), polled == null ? s : () -> {
                polled.close();
                s.close();
            });
            console.connect(s);
            machine.addStateful("serial0", s);
        }
        I8042 i8042 = new I8042("i8042",
                () -> machine.requestExit(new StopReason.Reset(StopReason.ResetCause.I8042)),
                isaLine.apply(IRQ_KEYBOARD), null);
        attach(machine, AddressSpace.PIO, i8042.busRanges(), i8042);
        machine.addStateful("i8042", i8042);

        InterruptService interrupts = platform.interrupts();
        Vsock vsock = null;
        // without the serial port, the virtio console that is the machine's console takes its input
        boolean consoleInput = serial == null
                && virtioTransports.stream().anyMatch(v -> v instanceof ConsolePort c && c.machineConsole());
        PollingInputStream polled = consoleInput && serialInputFd != null ? new PollingInputStream(serialInputFd) : null;
        try {
            int blks = 0, consoles = 0, rngs = 0, nets = 0;
            for (int i = 0; i < virtioTransports.size(); i++) {
                DeviceContext context = machine.deviceContext("virtio-mmio" + i,
                        isaLine.apply(MicrovmLayout.VIRTIO_IRQ_BASE + i), interrupts);
                long base = transportBase(i);
                Device d = switch (virtioTransports.get(i)) {
                    case CustomTransport c -> make("virtio-mmio transport " + i, c.factory(), context);
                    case Drive drive -> transport(context, base, openDisk(drive, "blk" + blks++));
                    case ConsolePort port when port.machineConsole() -> {
                        VirtioConsole c = new VirtioConsole("console" + consoles++,
                                !consoleInput ? null : polled != null ? polled : serialInput, console.sink());
                        if (consoleInput) {
                            console.connect(c);
                        }
                        yield transport(context, base, c);
                    }
                    case ConsolePort port -> transport(context, base,
                            new VirtioConsole("console" + consoles++, port.in(), port.out()));
                    case Rng rng -> transport(context, base, new VirtioRng("rng" + rngs++, new SecureRandom(), rng.limit()));
                    case VsockDevice v -> {
                        Vsock host = openVsock(v);
                        machine.own(host);
                        vsock = host;
                        yield transport(context, base, host.device());
                    }
                    case Net n -> transport(context, base, openNet(n, "net" + nets++));
                };
                machine.attachMmio(base, MicrovmLayout.VIRTIO_MMIO_SIZE, d);
                if (d instanceof Stateful stateful) {
                    machine.addStateful("virtio-mmio" + i, stateful);
                }
            }
        } catch (RuntimeException e) {
            if (polled != null) {
                polled.close();
            }
            throw e;
        }
        if (polled != null) {
            machine.own(polled); // owned after the console, so closed before it: its read ends at once
        }
        PciHostBridge pciBridge = plan.pci() ? PciWiring.wire(machine, interrupts, isaLine, ivshmems, plan.ramBytes()) : null;
        for (DeviceSpec u : devices) {
            IrqLine line = u.irq().isPresent() ? isaLine.apply(u.irq().getAsInt()) : IrqLines.none(0);
            Device d = make(u.describe(), u.factory(), machine.deviceContext(u.name(), line, interrupts));
            try {
                machine.attach(u.space(), u.base(), u.length(), d);
            } catch (IllegalArgumentException e) {
                throw new ConfigException("device", u.describe() + ": " + e.getMessage(), e);
            }
        }
        if (boot != null) {
            machine.vcpus().getFirst().setBootState(boot.bsp());
        }
        List<IoMapEntry> kvmOwned = plan.fixedWindows().stream().filter(e -> e.owner() == IoMapEntry.Owner.KVM).toList();
        return new Microvm(machine, console, serial, kvmOwned, plan.cmd().toString(), protocol, vsock, pciBridge, copy());
    }

    /** A virtio-mmio transport at {@code base} serving {@code device}, which it closes; closes it if it cannot be made. */
    private static Device transport(DeviceContext context, long base, VirtioDevice device) {
        try {
            return new VirtioMmioTransport(device, context, base);
        } catch (RuntimeException e) {
            device.close();
            throw e;
        }
    }

    private Vsock openVsock(VsockDevice v) {
        try {
            return Vsock.create("vsock0", v.guestCid(), v.udsPath());
        } catch (IOException | RuntimeException e) {
            throw new ConfigException("vsock", "vsock: " + e.getMessage(), e);
        }
    }

    /** Opens the interface's backend (a tap, passt, a switch port) and its device; a failure names the interface. */
    private static VirtioNet openNet(Net n, String name) {
        NetworkInterface iface = n.iface();
        NetBackend backend;
        try {
            backend = switch (iface.backend()) {
                case NetworkInterface.Backend.Tap t -> TapBackend.open(t.hostDevName());
                case NetworkInterface.Backend.Passt p -> PasstBackend.open(p.options());
                case NetworkInterface.Backend.Switch sw -> sw.netSwitch().connect();
                case NetworkInterface.Backend.Custom c -> Objects.requireNonNull(c.factory().get(), "the backend factory returned null");
            };
        } catch (IOException | RuntimeException e) {
            throw new ConfigException(n.field(), n.label() + ": " + (e.getMessage() != null ? e.getMessage() : e), e);
        }
        try {
            return new VirtioNet(name, iface.mac().orElseGet(MacAddress::random), backend);
        } catch (RuntimeException e) {
            backend.close();
            throw e;
        }
    }

    /** Opens and locks the disk's image; a failure (gone since validate(), locked by another VM) names the disk. */
    private static VirtioBlk openDisk(Drive drive, String name) {
        try {
            return VirtioBlk.open(name, drive.image(), drive.options());
        } catch (IOException e) {
            throw new ConfigException(drive.field(), drive.label() + ": " + e.getMessage(), e);
        }
    }

    /** Runs a device factory of the caller's; its failure is a configuration error of that device. */
    private static Device make(String what, Function<DeviceContext, Device> factory, DeviceContext context) {
        Device d;
        try {
            d = factory.apply(context);
        } catch (RuntimeException e) {
            throw new ConfigException("device", what + ": its factory failed: " + e, e);
        }
        if (d == null) {
            throw new ConfigException("device", what + ": its factory returned null");
        }
        return d;
    }

    private static void attach(Machine machine, AddressSpace space, List<BusRange> ranges, AutoCloseable owner) {
        machine.own(owner);
        for (BusRange r : ranges) {
            machine.bus(space).register(r.base(), r.length(), r.device());
        }
    }
}
