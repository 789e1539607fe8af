package dev.kindling.cli;

import dev.kindling.devices.vfio.VfioPlatformOptions;
import dev.kindling.devices.virtio.blk.BlkOptions;
import dev.kindling.devices.virtio.net.MacAddress;
import dev.kindling.devices.virtio.net.NetSwitch;
import dev.kindling.devices.virtio.net.NetworkInterface;
import dev.kindling.devices.virtio.net.PasstOptions;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.machine.StopReason;
import dev.kindling.microvm.IoMapEntry;
import dev.kindling.microvm.JsonConfig;
import dev.kindling.microvm.Microvm;
import dev.kindling.microvm.MicrovmBuilder;
import dev.kindling.microvm.MicrovmException;
import dev.kindling.microvm.OnOffAuto;
import dev.kindling.microvm.SnapshotOverrides;
import dev.kindling.snapshot.SnapshotException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;

/**
 * {@code kindling run}: boots a kernel (Linux or any PVH ELF) with the serial port on stdin/stdout
 * (on a terminal: raw mode and Ctrl-A escapes, see {@link HostConsole}); with {@code --virtio-console}
 * a virtio console port shares them, and has them alone with {@code --isa-serial off}. {@code --net} adds
 * virtio-net interfaces (the switches they name live as long as the command), {@code --vsock} a vsock
 * device, with Firecracker's Unix-socket protocol on its PATH, {@code --ivshmem} an ivshmem PCI device
 * on shared memory or an ivshmem server's (the memory file stays after the run). Exit status 0 when the guest
 * resets or powers off, or the user ends it with Ctrl-A x; 1 with a one-line reason when it fails or
 * cannot be built; 2 on {@code --timeout}.
 */
final class RunCommand {
    static final Set<String> OPTIONS = Set.of("kernel", "initrd", "cmdline", "mem", "vcpus", "pic", "pit", "rtc",
            "isa-serial", "irqchip", "config", "timeout", "disk", "vsock", "net", "snapshot", "snapshot-on", "restore", "pci", "ivshmem",
            "vfio-platform", "device-tree");
    static final Set<String> FLAGS = Set.of("print-io-map", "virtio-console", "rng");
    /** How long a stopped guest's last output may take to reach stdout. */
    private static final Duration LAST_OUTPUT = Duration.ofSeconds(5);

    private RunCommand() {}

    /** {@code --disk PATH[,ro][,root]}: a virtio-blk disk, read-only, the root device. */
    record Disk(Path path, boolean readOnly, boolean root) {
        static Disk parse(String spec) {
            String[] parts = spec.split(",", -1);
            if (parts[0].isEmpty()) {
                throw new UsageException("--disk takes PATH[,ro][,root], got '" + spec + "'");
            }
            boolean ro = false;
            boolean root = false;
            for (int i = 1; i < parts.length; i++) {
                switch (parts[i]) {
                    case "ro" -> ro = true;
                    case "root" -> root = true;
                    default -> throw new UsageException("--disk " + spec + ": unknown option '" + parts[i]
                            + "' (PATH[,ro][,root])");
                }
            }
            return new Disk(Path.of(parts[0]), ro, root);
        }
    }

    /** {@code --vsock CID[,PATH]}: the guest's CID, and the Unix socket of Firecracker's protocol. */
    record Vsock(long guestCid, Optional<Path> udsPath) {
        private static final String FORM = "CID[,PATH] (CID 3 to 4294967294)";

        static Vsock parse(String spec) {
            String[] parts = spec.split(",", 2);
            long cid;
            try {
                cid = Long.parseLong(parts[0]);
            } catch (NumberFormatException e) {
                throw new UsageException("--vsock " + spec + ": the guest CID '" + parts[0] + "' is not a number; "
                        + "--vsock takes " + FORM);
            }
            if (cid < 3 || cid > 0xFFFF_FFFEL) {
                throw new UsageException("--vsock " + spec + ": guest CID " + cid
                        + " is reserved or too large (0-2 are the hypervisor's, the local and the host's); --vsock takes " + FORM);
            }
            if (parts.length == 1) {
                return new Vsock(cid, Optional.empty());
            }
            if (parts[1].isEmpty()) {
                throw new UsageException("--vsock " + spec + ": the socket path is empty; --vsock takes " + FORM);
            }
            try {
                return new Vsock(cid, Optional.of(Path.of(parts[1])));
            } catch (InvalidPathException e) {
                throw new UsageException("--vsock " + spec + ": not a path: " + e.getMessage());
            }
        }
    }

    private static final String NET_FORM = "tap=TAP, passt[,socket=PATH] or switch=NAME, each with [,mac=MAC]";

    /**
     * {@code --net tap=TAP[,mac=MAC]}, {@code --net passt[,socket=PATH][,mac=MAC]} or
     * {@code --net switch=NAME[,mac=MAC]}: an interface named {@code id} on that backend;
     * {@code switches} gives the switch of each name.
     */
    static NetworkInterface parseNet(String spec, String id, Function<String, NetSwitch> switches) {
        String[] parts = spec.split(",", -1);
        String kind = parts[0];
        String value = null;
        int eq = kind.indexOf('=');
        if (eq >= 0) {
            value = kind.substring(eq + 1);
            kind = kind.substring(0, eq);
        }
        String socket = null;
        MacAddress mac = null;
        for (int i = 1; i < parts.length; i++) {
            String option = parts[i];
            if (option.startsWith("mac=") && mac == null) {
                try {
                    mac = MacAddress.parse(option.substring(4));
                } catch (IllegalArgumentException e) {
                    throw new UsageException("--net " + spec + ": " + e.getMessage());
                }
            } else if (option.startsWith("socket=") && socket == null && kind.equals("passt")) {
                socket = option.substring(7);
                if (socket.isEmpty()) {
                    throw new UsageException("--net " + spec + ": socket= needs the path of passt's socket");
                }
            } else {
                throw new UsageException("--net " + spec + ": unexpected '" + option + "'; --net takes " + NET_FORM);
            }
        }
        NetworkInterface iface = switch (kind) {
            case "tap" -> NetworkInterface.tap(id, named(spec, "tap", value));
            case "switch" -> NetworkInterface.onSwitch(id, switches.apply(named(spec, "switch", value)));
            case "passt" -> {
                if (value != null) {
                    throw new UsageException("--net " + spec + ": passt takes no value (passt,socket=PATH connects to a"
                            + " running one)");
                }
                try {
                    yield NetworkInterface.passt(id, socket == null ? PasstOptions.defaults()
                            : PasstOptions.connectTo(Path.of(socket)));
                } catch (InvalidPathException e) {
                    throw new UsageException("--net " + spec + ": not a path: " + e.getMessage());
                }
            }
            default -> throw new UsageException("--net " + spec + ": unknown backend '" + kind + "'; --net takes " + NET_FORM);
        };
        return mac == null ? iface : iface.withMac(mac);
    }

    /** {@code KEY=VALUE,...} of {@code flag}, in order; a part without a key, or a key given twice, is named. */
    private static Map<String, String> keyValues(String flag, String spec, String form) {
        Map<String, String> o = new LinkedHashMap<>();
        for (String part : spec.split(",", -1)) {
            int eq = part.indexOf('=');
            if (eq <= 0 || o.putIfAbsent(part.substring(0, eq), part.substring(eq + 1)) != null) {
                throw new UsageException(flag + " " + spec + ": unexpected '" + part + "'; " + flag + " takes " + form);
            }
        }
        return o;
    }

    private static final String IVSHMEM_FORM = "shm=PATH,size=SIZE or server=SOCKET[,msi=off]";

    /** {@code --ivshmem shm=PATH,size=SIZE} or {@code --ivshmem server=SOCKET[,msi=off]}. */
    static void parseIvshmem(String spec, MicrovmBuilder b, RunShared shared) {
        Map<String, String> o = keyValues("--ivshmem", spec, IVSHMEM_FORM);
        if (o.containsKey("shm") && o.containsKey("size") && o.size() == 2 && !o.get("shm").isEmpty()) {
            long size = Sizes.parse("--ivshmem size", o.get("size"));
            try {
                b.ivshmem(shared.ivshmemMemory(Path.of(o.get("shm")), size));
            } catch (RuntimeException e) {
                throw new UsageException("--ivshmem " + spec + ": " + e.getMessage());
            }
        } else if (o.containsKey("server") && !o.get("server").isEmpty()
                && o.size() == (o.containsKey("msi") ? 2 : 1)) {
            String msi = o.getOrDefault("msi", "on");
            if (!msi.equals("on") && !msi.equals("off")) {
                throw new UsageException("--ivshmem " + spec + ": msi= takes on or off");
            }
            b.ivshmemServer(Path.of(o.get("server")), msi.equals("on"));
        } else {
            throw new UsageException("--ivshmem " + spec + ": --ivshmem takes " + IVSHMEM_FORM);
        }
    }

    static final String VFIO_FORM = "host=NAME|sysfsdev=PATH,addr=ADDR,irq=GSI[,x-no-mmap=on|off][,mmap-timeout-ms=N]"
            + "[,x-irqfd=on|off]";
    /** Where {@code host=NAME} is, as QEMU's vfio-platform looks for it. */
    static final Path PLATFORM_DEVICES = Path.of("/sys/bus/platform/devices");

    /**
     * {@code --vfio-platform host=NAME,addr=ADDR,irq=GSI[,...]}, with QEMU's vfio-platform option names:
     * {@code host=} names the device in /sys/bus/platform/devices, {@code sysfsdev=} is its sysfs path
     * (a {@code host=} with a '/' is taken as one too).
     */
    static void parseVfioPlatform(String spec, MicrovmBuilder b) {
        Map<String, String> o = keyValues("--vfio-platform", spec, VFIO_FORM);
        if (o.containsKey("host") == o.containsKey("sysfsdev")) {
            throw new UsageException("--vfio-platform " + spec + ": give one of host= and sysfsdev=; --vfio-platform takes "
                    + VFIO_FORM);
        }
        for (String need : List.of(o.containsKey("host") ? "host" : "sysfsdev", "addr", "irq")) {
            if (o.getOrDefault(need, "").isEmpty()) {
                throw new UsageException("--vfio-platform " + spec + ": " + need + "= is missing; --vfio-platform takes " + VFIO_FORM);
            }
        }
        VfioPlatformOptions options = VfioPlatformOptions.defaults();
        long address;
        int irq;
        try {
            address = Long.decode(o.remove("addr"));
            irq = Integer.parseInt(o.remove("irq"));
            String host = o.remove("host");
            Path sysfs = host == null ? Path.of(o.remove("sysfsdev"))
                    : host.contains("/") ? Path.of(host) : PLATFORM_DEVICES.resolve(host);
            for (Map.Entry<String, String> e : o.entrySet()) {
                options = switch (e.getKey()) {
                    case "x-no-mmap" -> options.withNoMmap(onOff(spec, e));
                    case "x-irqfd" -> options.withIrqfd(onOff(spec, e));
                    case "mmap-timeout-ms" -> options.withMmapTimeout(Duration.ofMillis(Long.parseLong(e.getValue())));
                    default -> throw new UsageException("--vfio-platform " + spec + ": unknown option '" + e.getKey()
                            + "'; --vfio-platform takes " + VFIO_FORM);
                };
            }
            b.vfioPlatform(sysfs, address, irq, options);
        } catch (NumberFormatException e) {
            throw new UsageException("--vfio-platform " + spec + ": not a number: " + e.getMessage());
        } catch (IllegalArgumentException e) {
            throw new UsageException("--vfio-platform " + spec + ": " + e.getMessage());
        }
    }

    private static boolean onOff(String spec, Map.Entry<String, String> e) {
        return switch (e.getValue()) {
            case "on" -> true;
            case "off" -> false;
            default -> throw new UsageException("--vfio-platform " + spec + ": " + e.getKey() + "= takes on or off");
        };
    }

    private static String named(String spec, String kind, String value) {
        if (value == null || value.isEmpty()) {
            throw new UsageException("--net " + spec + ": " + kind + "= needs a name; --net takes " + NET_FORM);
        }
        return value;
    }

    /**
     * Applies the options to a builder: the JSON configuration first, then flags override it. The
     * switches that {@code --net switch=NAME} (or the JSON) names come from {@code switches}.
     */
    static MicrovmBuilder configure(Args a, RunShared shared) {
        MicrovmBuilder b = Microvm.builder();
        int jsonInterfaces = 0;
        if (a.has("config")) {
            JsonConfig json = JsonConfig.read(Path.of(a.get("config")));
            json.applyTo(b, shared::netSwitch);
            jsonInterfaces = json.networkInterfaces().size();
        }
        if (a.has("kernel")) {
            b.kernel(Path.of(a.get("kernel")));
        }
        if (a.has("initrd")) {
            b.initrd(Path.of(a.get("initrd")));
        }
        if (a.has("cmdline")) {
            b.cmdline(a.get("cmdline"));
        }
        if (a.has("mem")) {
            b.memoryMib(a.intValue("mem", 0));
        }
        if (a.has("vcpus")) {
            b.vcpus(a.intValue("vcpus", 0));
        }
        if (a.has("pic")) {
            b.pic(OnOffAuto.parse("--pic", a.get("pic")));
        }
        if (a.has("pit")) {
            b.pit(OnOffAuto.parse("--pit", a.get("pit")));
        }
        if (a.has("rtc")) {
            b.rtc(OnOffAuto.parse("--rtc", a.get("rtc")));
        }
        if (a.has("isa-serial")) {
            OnOffAuto s = OnOffAuto.parse("--isa-serial", a.get("isa-serial"));
            if (s == OnOffAuto.AUTO) {
                throw new UsageException("--isa-serial takes on or off");
            }
            b.isaSerial(s == OnOffAuto.ON);
        }
        if (a.has("irqchip")) {
            String v = a.get("irqchip").toUpperCase(Locale.ROOT);
            try {
                b.irqchip(IrqchipMode.valueOf(v));
            } catch (IllegalArgumentException e) {
                throw new UsageException("--irqchip takes split or kernel, got '" + a.get("irqchip") + "'");
            }
        }
        // in the order given, each on the next virtio-mmio transport
        for (String spec : a.all("disk")) {
            Disk d = Disk.parse(spec);
            BlkOptions options = BlkOptions.defaults().withReadOnly(d.readOnly());
            if (d.root()) {
                b.rootDevice(d.path(), options);
            } else {
                b.virtioBlk(d.path(), options);
            }
        }
        if (a.has("virtio-console")) {
            b.virtioConsole();
        }
        if (a.has("rng")) {
            b.virtioRng();
        }
        // the guest numbers its interfaces in this order, after the JSON file's
        List<String> nets = a.all("net");
        for (int i = 0; i < nets.size(); i++) {
            b.virtioNet(parseNet(nets.get(i), "eth" + (jsonInterfaces + i), shared::netSwitch));
        }
        if (a.has("pci")) {
            b.pci(OnOffAuto.parse("--pci", a.get("pci")));
        }
        for (String spec : a.all("ivshmem")) {
            parseIvshmem(spec, b, shared);
        }
        for (String spec : a.all("vfio-platform")) {
            parseVfioPlatform(spec, b);
        }
        if (a.has("device-tree")) {
            b.deviceTree(OnOffAuto.parse("--device-tree", a.get("device-tree")));
        }
        if (a.all("vsock").size() > 1) {
            throw new UsageException("--vsock given twice: a microVM has one vsock device");
        }
        if (a.has("vsock")) {
            Vsock v = Vsock.parse(a.get("vsock"));
            if (v.udsPath().isPresent()) {
                b.vsock(v.guestCid(), v.udsPath().get());
            } else {
                b.vsock(v.guestCid());
            }
        }
        return b;
    }

    static int run(List<String> argv, InputStream in, PrintStream out, PrintStream err) throws InterruptedException {
        Args a = new Args(argv, OPTIONS, FLAGS);
        int timeout = a.intValue("timeout", 0);
        if (a.has("snapshot") != a.has("snapshot-on")) {
            throw new UsageException("--snapshot DIR and --snapshot-on TEXT go together: the snapshot is written when"
                    + " the console first shows TEXT");
        }
        if (a.has("restore")) {
            for (String o : List.of("kernel", "config", "initrd", "cmdline", "mem", "vcpus", "disk", "net", "ivshmem",
                    "vfio-platform")) {
                if (a.has(o)) {
                    throw new UsageException("--restore DIR brings back a saved microVM: --" + o + " does not apply");
                }
            }
            return restore(Path.of(a.get("restore")), a, timeout, in, out, err);
        }
        if (!a.has("kernel") && !a.has("config")) {
            throw new UsageException("run needs --kernel PATH, --config FILE or --restore DIR");
        }
        // the switches and shared memories outlive the VM, whose ports on them it closes first
        try (RunShared shared = new RunShared()) {
            return run(configure(a, shared).serialOutput(out), a, timeout, in, out, err);
        }
    }

    private static int run(MicrovmBuilder b, Args a, int timeout, InputStream in, PrintStream out, PrintStream err)
            throws InterruptedException {
        try (HostConsole console = HostConsole.open(in, err)) {
            Microvm vm;
            try {
                vm = b.serialInput(console.stream()).build();
            } catch (MicrovmException e) {
                err.println("kindling: " + e.getMessage());
                return 1;
            }
            try {
                return run(vm, a, timeout, console, out, err);
            } finally {
                console.endInput(); // the serial's reader thread leaves before close() waits for it
                vm.close();
            }
        }
    }

    /** {@code --restore DIR}: the saved microVM, started, on this terminal; {@code --vsock PATH} moves its socket. */
    private static int restore(Path dir, Args a, int timeout, InputStream in, PrintStream out, PrintStream err)
            throws InterruptedException {
        SnapshotOverrides overrides = SnapshotOverrides.none();
        if (a.has("vsock")) {
            Vsock v = Vsock.parse(a.get("vsock"));
            overrides = overrides.withVsockCid(v.guestCid());
            if (v.udsPath().isPresent()) {
                overrides = overrides.withVsockUdsPath(v.udsPath().get());
            }
        }
        try (HostConsole console = HostConsole.open(in, err)) {
            Microvm vm;
            try {
                vm = Microvm.restore(dir, overrides.withSerial(console.stream(), out));
            } catch (SnapshotException | MicrovmException e) {
                err.println("kindling: " + e.getMessage());
                return 1;
            }
            try {
                return run(vm, a, timeout, console, out, err);
            } finally {
                console.endInput();
                vm.close();
            }
        }
    }

    private static int run(Microvm vm, Args a, int timeout, HostConsole console, PrintStream out, PrintStream err)
            throws InterruptedException {
        if (a.has("print-io-map")) {
            for (IoMapEntry e : vm.ioMap()) {
                err.println("io-map: " + e);
            }
        }
        console.enterRawMode();
        if (vm.machine().state() == dev.kindling.machine.Machine.State.CREATED) {
            vm.start();
        }
        CompletableFuture<StopReason> exit = vm.onExit();
        CompletableFuture<Boolean> snapshot = a.has("snapshot")
                ? snapshotWhenSeen(vm, a.get("snapshot-on"), Path.of(a.get("snapshot")), err)
                : new CompletableFuture<>();
        CompletableFuture<Object> first = CompletableFuture.anyOf(exit, console.quitRequested(), snapshot);
        try {
            if (timeout > 0) {
                first.get(timeout, TimeUnit.SECONDS);
            } else {
                first.get();
            }
        } catch (TimeoutException e) {
            vm.stop();
            vm.awaitExit(LAST_OUTPUT);
            out.flush();
            err.println("kindling: timeout: the guest was still running after " + timeout + " s");
            return 2;
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause()); // neither future fails
        }
        if (snapshot.isDone()) {
            vm.stop();
            vm.awaitExit(LAST_OUTPUT);
            out.flush();
            return snapshot.join() ? 0 : 1;
        }
        if (!exit.isDone()) {
            vm.stop();
            vm.awaitExit(LAST_OUTPUT);
            out.flush();
            err.println("kindling: terminated (Ctrl-A x)");
            return 0;
        }
        out.flush();
        StopReason why = exit.join();
        if (why.isClean()) {
            return 0;
        }
        err.println("kindling: " + why.describe());
        return 1;
    }

    /**
     * Writes a snapshot of {@code vm} to {@code dir} once its console shows {@code text}; completes
     * with whether that worked (the line says which), or never if the guest ends first.
     */
    private static CompletableFuture<Boolean> snapshotWhenSeen(Microvm vm, String text, Path dir, PrintStream err) {
        CompletableFuture<Boolean> done = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                while (!vm.console().awaitText(text, Duration.ofMillis(200))) {
                    if (vm.onExit().isDone()) {
                        return;
                    }
                }
                vm.snapshot(dir);
                err.println("kindling: snapshot written to " + dir);
                done.complete(true);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (RuntimeException e) {
                err.println("kindling: snapshot failed: " + e.getMessage());
                done.complete(false);
            }
        }, "kindling-snapshot");
        t.setDaemon(true);
        t.start();
        return done;
    }
}
