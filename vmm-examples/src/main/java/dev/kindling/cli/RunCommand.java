package dev.kindling.cli;

import dev.kindling.devices.virtio.blk.BlkOptions;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.machine.StopReason;
import dev.kindling.microvm.IoMapEntry;
import dev.kindling.microvm.Microvm;
import dev.kindling.microvm.MicrovmBuilder;
import dev.kindling.microvm.MicrovmException;
import dev.kindling.microvm.OnOffAuto;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * {@code kindling run}: boots a kernel (Linux or any PVH ELF) with the serial port on stdin/stdout
 * (on a terminal: raw mode and Ctrl-A escapes, see {@link HostConsole}); with {@code --virtio-console}
 * a virtio console port shares them, and has them alone with {@code --isa-serial off}. Exit status 0 when the guest
 * resets or powers off, or the user ends it with Ctrl-A x; 1 with a one-line reason when it fails or
 * cannot be built; 2 on {@code --timeout}.
 */
final class RunCommand {
    static final Set<String> OPTIONS = Set.of("kernel", "initrd", "cmdline", "mem", "vcpus", "pic", "pit", "rtc",
            "isa-serial", "irqchip", "config", "timeout", "disk");
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

    /** Applies the options to a builder: the JSON configuration first, then flags override it. */
    static MicrovmBuilder configure(Args a) {
        MicrovmBuilder b = Microvm.builder();
        if (a.has("config")) {
            b.config(Path.of(a.get("config")));
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
        return b;
    }

    static int run(List<String> argv, InputStream in, PrintStream out, PrintStream err) throws InterruptedException {
        Args a = new Args(argv, OPTIONS, FLAGS);
        if (!a.has("kernel") && !a.has("config")) {
            throw new UsageException("run needs --kernel PATH or --config FILE");
        }
        int timeout = a.intValue("timeout", 0);
        MicrovmBuilder b = configure(a).serialOutput(out);
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

    private static int run(Microvm vm, Args a, int timeout, HostConsole console, PrintStream out, PrintStream err)
            throws InterruptedException {
        if (a.has("print-io-map")) {
            for (IoMapEntry e : vm.ioMap()) {
                err.println("io-map: " + e);
            }
        }
        console.enterRawMode();
        vm.start();
        CompletableFuture<StopReason> exit = vm.onExit();
        CompletableFuture<Object> first = CompletableFuture.anyOf(exit, console.quitRequested());
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
}
