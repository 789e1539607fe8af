package dev.kindling.cli;

import dev.kindling.machine.StopReason;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.microvm.Microvm;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.regex.Pattern;

/**
 * {@code kindling bench boot}: boots the test kernel and initramfs with Kindling (in this JVM, timed
 * from {@code build()}) and with QEMU's microvm (a process, timed from its start), alternating, and
 * reports the time to the first serial byte, to init's marker, and the host memory each VM takes
 * beyond guest RAM (Kindling: this JVM's RSS growth while the VM runs, less the guest RAM's resident
 * pages; QEMU: the process RSS less its guest RAM mapping's resident pages).
 */
final class BootBench {
    static final String MARKER = "KINDLING-INIT-OK";
    static final int MEM_MIB = 64;
    static final Duration LIMIT = Duration.ofMinutes(5);

    private BootBench() {}

    record Sample(double firstByteS, double markerS, double overheadMib) {}

    static int run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Args a = new Args(argv, Set.of("runs"), Set.of());
        int runs = a.intValue("runs", 3);
        if (runs < 1) {
            throw new UsageException("--runs must be at least 1");
        }
        Path qemu = HostTool.QEMU.require(err);
        Workspace.GuestKernel k = Workspace.kernel(err);
        String cmdline = k.cmdline() + " percpu_alloc=page kindling.action=poweroff";
        List<Sample> kindling = new ArrayList<>();
        List<Sample> qemus = new ArrayList<>();
        // one warm-up boot each, not counted: the JVM's heap and JIT, the host's page cache
        err.printf("bench boot: warm-up kindling %s%n", kindling(k, cmdline));
        err.printf("bench boot: warm-up qemu     %s%n", qemu(qemu, k, cmdline));
        for (int r = 0; r < runs; r++) {
            kindling.add(kindling(k, cmdline));
            err.printf("bench boot: run %d kindling %s%n", r + 1, kindling.getLast());
            qemus.add(qemu(qemu, k, cmdline));
            err.printf("bench boot: run %d qemu     %s%n", r + 1, qemus.getLast());
        }
        out.printf("%-30s %10s %10s %7s%n", "metric (median)", "kindling", "qemu", "ratio");
        double[] ratios = new double[3];
        String[] names = {"first-serial-byte-s", "init-marker-s", "host-memory-beyond-ram-mib"};
        for (int m = 0; m < 3; m++) {
            double kv = Bench.median(column(kindling, m)), qv = Bench.median(column(qemus, m));
            ratios[m] = kv / qv;
            out.printf("%-30s %10.2f %10.2f %7.2f%n", names[m], kv, qv, ratios[m]);
        }
        out.printf("(%d alternating runs after a warm-up; %d MiB, 1 vCPU, %s; ratio = kindling / qemu, below 1 is better)%n",
                runs, MEM_MIB, k.vmlinux().getFileName());
        out.printf("boot-ratio: first-byte %.2f init %.2f memory %.2f%n", ratios[0], ratios[1], ratios[2]);
        return 0;
    }

    private static double[] column(List<Sample> s, int m) {
        return s.stream().mapToDouble(x -> m == 0 ? x.firstByteS() : m == 1 ? x.markerS() : x.overheadMib()).toArray();
    }

    /** Watches console bytes for the first byte and the marker. */
    static final class Watch extends OutputStream {
        private final long t0;
        private final StringBuilder text = new StringBuilder();
        volatile long firstByte = -1, marker = -1;

        Watch(long t0) {
            this.t0 = t0;
        }

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) {
            long now = System.nanoTime();
            if (firstByte < 0 && len > 0) {
                firstByte = now - t0;
            }
            if (marker < 0) {
                text.append(new String(b, off, len, StandardCharsets.ISO_8859_1));
                if (text.indexOf(MARKER) >= 0) {
                    marker = now - t0;
                    notifyAll();
                }
            }
        }

        synchronized boolean awaitMarker(Duration limit) throws InterruptedException {
            long deadline = System.nanoTime() + limit.toNanos();
            while (marker < 0 && System.nanoTime() < deadline) {
                wait(100);
            }
            return marker >= 0;
        }
    }

    static Sample kindling(Workspace.GuestKernel k, String cmdline) throws Exception {
        long rssBefore = rssKb(Path.of("/proc/self"));
        long t0 = System.nanoTime();
        Watch w = new Watch(t0);
        try (Microvm vm = Microvm.builder().name("bench-boot").memoryMib(MEM_MIB).kernel(k.vmlinux())
                .initrd(k.initramfs()).cmdline(cmdline).serialOutput(w).build()) {
            vm.start();
            if (!w.awaitMarker(LIMIT)) {
                throw new IllegalStateException("Kindling: no init marker within " + LIMIT);
            }
            long ramKb = 0;
            for (MemoryRegion r : vm.machine().memory().regions()) {
                ramKb += mappingRssKb(Path.of("/proc/self"), r.segment().address());
            }
            if (ramKb == 0) {
                throw new IllegalStateException("guest RAM not found in /proc/self/smaps");
            }
            double overhead = (rssKb(Path.of("/proc/self")) - rssBefore - ramKb) / 1024.0;
            Optional<StopReason> why = vm.awaitExit(LIMIT);
            if (why.isEmpty() || !why.get().isClean()) {
                throw new IllegalStateException("Kindling: guest did not power off: " + why);
            }
            return new Sample(w.firstByte / 1e9, w.marker / 1e9, overhead);
        }
    }

    /** QEMU's microvm with KVM, one vCPU, no default devices, the serial port on stdio. */
    static List<String> qemuMicrovm(Path qemu, int memMib) {
        return List.of(qemu.toString(), "-M", "microvm", "-accel", "kvm", "-cpu", "host,arch-capabilities=off",
                "-m", memMib + "M", "-smp", "1", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                "-serial", "stdio");
    }

    static Sample qemu(Path qemu, Workspace.GuestKernel k, String cmdline) throws Exception {
        List<String> cmd = new ArrayList<>(qemuMicrovm(qemu, MEM_MIB));
        cmd.addAll(List.of("-kernel", k.vmlinux().toString(), "-initrd", k.initramfs().toString(), "-append", cmdline));
        long t0 = System.nanoTime();
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
        Watch w = new Watch(t0);
        Thread pump = Thread.ofPlatform().daemon().start(() -> {
            try (InputStream in = p.getInputStream()) {
                in.transferTo(w);
            } catch (IOException ignored) {
                // the process ended
            }
        });
        try {
            if (!w.awaitMarker(LIMIT)) {
                throw new IllegalStateException("QEMU: no init marker within " + LIMIT);
            }
            Path proc = Path.of("/proc/" + p.pid());
            long ramKb = ramMappingRssKb(proc, (long) MEM_MIB << 20);
            if (ramKb == 0) {
                throw new IllegalStateException("QEMU's guest RAM not found in its smaps");
            }
            double overhead = (rssKb(proc) - ramKb) / 1024.0;
            // QEMU's microvm has no i8042, so the guest's reboot (reboot=k) does not end it: stop it here.
            p.destroy();
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly();
            }
            pump.join(1000);
            return new Sample(w.firstByte / 1e9, w.marker / 1e9, overhead);
        } finally {
            ChildProcess.kill(p);
        }
    }

    static long rssKb(Path proc) throws IOException {
        for (String line : Files.readAllLines(proc.resolve("status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        throw new IOException("no VmRSS in " + proc);
    }

    /** Rss of the mapping that starts at {@code address}. */
    static long mappingRssKb(Path proc, long address) throws IOException {
        String start = Long.toHexString(address) + "-";
        return smapsRss(proc, line -> line.startsWith(start));
    }

    /** Rss of the largest anonymous mapping of exactly {@code size} bytes: QEMU's guest RAM. */
    static long ramMappingRssKb(Path proc, long size) throws IOException {
        return smapsRss(proc, line -> {
            String[] range = line.split("\\s+")[0].split("-");
            return Long.parseUnsignedLong(range[1], 16) - Long.parseUnsignedLong(range[0], 16) == size;
        });
    }

    private static final Pattern MAPPING = Pattern.compile("^[0-9a-f]+-[0-9a-f]+ .*");

    private static long smapsRss(Path proc, Predicate<String> header) throws IOException {
        boolean inside = false;
        long total = 0;
        for (String line : Files.readAllLines(proc.resolve("smaps"))) {
            if (MAPPING.matcher(line).matches()) {
                inside = header.test(line);
            } else if (inside && line.startsWith("Rss:")) {
                total += Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        return total;
    }
}
