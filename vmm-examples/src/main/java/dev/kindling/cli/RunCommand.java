package dev.kindling.cli;

import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.machine.StopReason;
import dev.kindling.microvm.IoMapEntry;
import dev.kindling.microvm.Microvm;
import dev.kindling.microvm.MicrovmBuilder;
import dev.kindling.microvm.OnOffAuto;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;

/**
 * {@code kindling run}: boots a kernel (Linux or any PVH ELF) with the serial port on stdin/stdout.
 * Exit status 0 when the guest resets or powers off; 1 with a one-line reason otherwise.
 */
final class RunCommand {
    static final Set<String> OPTIONS = Set.of("kernel", "initrd", "cmdline", "mem", "vcpus", "pic", "pit", "rtc",
            "isa-serial", "irqchip", "config", "timeout");
    static final Set<String> FLAGS = Set.of("print-io-map");

    private RunCommand() {}

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
        return b;
    }

    static int run(List<String> argv, InputStream in, PrintStream out, PrintStream err) throws InterruptedException {
        Args a = new Args(argv, OPTIONS, FLAGS);
        if (!a.has("kernel") && !a.has("config")) {
            throw new UsageException("run needs --kernel PATH or --config FILE");
        }
        int timeout = a.intValue("timeout", 0);
        MicrovmBuilder b = configure(a).serialInput(in).serialOutput(out);
        try (Microvm vm = b.build()) {
            if (a.has("print-io-map")) {
                for (IoMapEntry e : vm.ioMap()) {
                    err.println("io-map: " + e);
                }
            }
            vm.start();
            Optional<StopReason> why = vm.awaitExit(timeout > 0 ? Duration.ofSeconds(timeout) : Duration.ofDays(36500));
            vm.drainConsole();
            out.flush();
            if (why.isEmpty()) {
                err.println("kindling: timeout: the guest was still running after " + timeout + " s");
                return 2;
            }
            if (why.get().isClean()) {
                return 0;
            }
            err.println("kindling: " + why.get().describe());
            return 1;
        }
    }
}
