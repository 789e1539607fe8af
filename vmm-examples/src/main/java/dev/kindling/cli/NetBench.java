package dev.kindling.cli;

import dev.kindling.boot.Initramfs;
import dev.kindling.devices.virtio.net.MacAddress;
import dev.kindling.devices.virtio.net.NetworkInterface;
import dev.kindling.devices.virtio.net.PasstOptions;
import dev.kindling.machine.StopReason;
import dev.kindling.microvm.Microvm;
import java.io.BufferedOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;

/**
 * {@code kindling bench net}: TCP throughput from the guest to the host over a tap and over passt,
 * measured inside the guest. The test kernel boots a bench-only initramfs whose {@code /init} is
 * {@code guests/linux/netguest.c} (static, built here) with two virtio-net interfaces: a tap in a
 * network namespace the bench creates, where the same program receives, and passt (started by the
 * bench, the same way for both VMMs), whose gateway address reaches a receiver on 127.0.0.1. Each
 * round sends a pattern on a new connection and is timed from the connect to the receiver's answer
 * that it got every byte with the right sum. Kindling (in this JVM) and QEMU's microvm (a process,
 * {@code virtio-net-device} with {@code -netdev tap,vhost=off} and {@code -netdev stream}) boot the
 * same kernel, program and command line, alternating.
 */
final class NetBench {
    static final int MEM_MIB = 64;
    static final int ROUNDS = 2;
    static final Duration LIMIT = Duration.ofMinutes(30);
    /** How long a guest's or receiver's job may take, connecting included, in seconds. */
    static final int JOB_SECONDS = 300;
    static final int QEMU_GUEST_EXIT = StartupBench.QEMU_GUEST_EXIT;
    static final String[] ROWS = {"tap-tcp-kib-s", "passt-tcp-kib-s"};
    static final String[] BACKENDS = {"tap", "passt"};
    static final String HOST_TAP = "10.0.1.1", GUEST_TAP = "10.0.1.2", GUEST_PASST = "10.0.2.15", GATEWAY = "10.0.2.2";
    static final MacAddress MAC_TAP = MacAddress.parse("52:54:00:6e:00:01");
    static final MacAddress MAC_PASST = MacAddress.parse("52:54:00:6e:00:02");
    /** The receivers' ports in the namespace; only the bench's programs are there. */
    static final int TAP_PORT = 5100;
    static final HostTool IP = new HostTool("ip", "iproute2");
    static final HostTool PASST = new HostTool("passt", "passt");
    private static final Duration TOOL = Duration.ofMinutes(1);
    private static final Duration START = Duration.ofSeconds(30);

    private NetBench() {}

    record Options(int runs, int kib) {
        long bytes() {
            return (long) kib << 10;
        }
    }

    /** One side's figures, per round: [row][round], KiB/s. */
    record Figures(List<double[]> rows) {
        double median(int row) {
            return Bench.median(rows.get(row));
        }
    }

    static Options options(List<String> argv) {
        Args a = new Args(argv, Set.of("runs", "kib"), Set.of());
        int runs = a.intValue("runs", 3);
        int kib = a.intValue("kib", 256);
        if (runs < 1) {
            throw new UsageException("--runs must be at least 1");
        }
        if (kib < 1 || kib > 1 << 20) {
            throw new UsageException("--kib must be between 1 and " + (1 << 20));
        }
        if (!a.positional().isEmpty()) {
            throw new UsageException("bench net takes no arguments besides its options, got '" + a.positional().getFirst() + "'");
        }
        return new Options(runs, kib);
    }

    static int run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Options o = options(argv);
        if (!HostTool.runningAsRoot()) {
            throw new PrerequisiteException("bench net needs root: it makes a tap and a network namespace");
        }
        Path qemu = HostTool.QEMU.require(err);
        Path ip = IP.require(err);
        Path passt = PASST.require(err);
        Path program = Workspace.buildGuestTarget("netguest", err);
        Workspace.GuestKernel k = Workspace.kernel(err);
        String id = HexFormat.of().formatHex(new SecureRandom().generateSeed(4));
        Path dir = Files.createTempDirectory("kindling-bench-net-");
        Path initramfs = dir.resolve("initramfs.cpio");
        Setup s = new Setup(ip, passt, program, "kdns-" + id, dir, o.bytes());
        try {
            writeInitramfs(initramfs, Files.readAllBytes(program));
            s.ip("netns", "add", s.namespace());
            try {
                s.ip("-n", s.namespace(), "link", "set", "lo", "up");
                List<String> kindlingLines = new ArrayList<>(), qemuLines = new ArrayList<>();
                for (int r = 1; r <= o.runs(); r++) {
                    List<String> kl = kindling(s, k, initramfs, "kdtap" + id + "k");
                    err.printf("bench net: run %d kindling %s%n", r, summary(parse(kl)));
                    kindlingLines.addAll(kl);
                    List<String> ql = qemu(s, qemu, k, initramfs, "kdtap" + id + "q");
                    err.printf("bench net: run %d qemu     %s%n", r, summary(parse(ql)));
                    qemuLines.addAll(ql);
                }
                Figures kindling = parse(kindlingLines), qemuFigures = parse(qemuLines);
                out.printf("%-20s %10s %10s %7s%n", "metric (median)", "kindling", "qemu", "ratio");
                double[] ratio = new double[ROWS.length];
                for (int i = 0; i < ROWS.length; i++) {
                    double kv = kindling.median(i), qv = qemuFigures.median(i);
                    ratio[i] = kv / qv;
                    out.printf("%-20s %10.1f %10.1f %7.2f%n", ROWS[i], kv, qv, ratio[i]);
                }
                out.printf("(%d run(s) of %d rounds each, alternating; in the guest: %d KiB guest to host per TCP"
                                + " connection, timed from connect to the receiver's sum; tap in a network namespace,"
                                + " receiver there; passt started by the bench, receiver on 127.0.0.1; %d MiB, 1 vCPU, %s;"
                                + " QEMU -M microvm virtio-net-device, -netdev tap vhost=off and -netdev stream;"
                                + " ratio = kindling / qemu, above 1 is better)%n",
                        o.runs(), ROUNDS, o.kib(), MEM_MIB, k.vmlinux().getFileName());
                out.printf("net: tap-ratio %.2f passt-ratio %.2f%n", ratio[0], ratio[1]);
                return 0;
            } finally {
                s.ip("netns", "del", s.namespace());
            }
        } finally {
            deleteTree(dir);
        }
    }

    private static String summary(Figures f) {
        return String.format("tap %.1f KiB/s, passt %.1f KiB/s", f.median(0), f.median(1));
    }

    /** What every boot shares: the tools, the namespace, where passt's socket goes, the transfer size. */
    record Setup(Path ipTool, Path passt, Path program, String namespace, Path dir, long bytes) {
        void ip(String... args) throws IOException, InterruptedException {
            List<String> cmd = new ArrayList<>(List.of(ipTool.toString()));
            cmd.addAll(List.of(args));
            ChildProcess.Result r = ChildProcess.run(TOOL, cmd);
            if (r.exitStatus() != 0) {
                throw new IllegalStateException(String.join(" ", cmd) + " exited " + r.exitStatus() + ": " + r.output().strip());
            }
        }

        /** Gives the tap its host-side address in the namespace and brings it up. */
        void configureTap(String tap) throws IOException, InterruptedException {
            ip("-n", namespace, "addr", "add", HOST_TAP + "/24", "dev", tap);
            ip("-n", namespace, "link", "set", tap, "up");
        }
    }

    /** The guest's command line: both interfaces, then alternately a round over the tap and over passt. */
    static String guestCmdline(String kernelCmdline, long bytes, int[] loopbackPorts) {
        StringBuilder c = new StringBuilder(kernelCmdline);
        // tsc=reliable: no clocksource watchdog, which on a loaded host can stall the boot (both VMMs alike)
        c.append(" quiet tsc=reliable ng.wait=").append(JOB_SECONDS)
                .append(" ng.if=").append(MAC_TAP).append(',').append(GUEST_TAP).append("/24")
                .append(" ng.if=").append(MAC_PASST).append(',').append(GUEST_PASST).append("/24");
        for (int r = 1; r <= ROUNDS; r++) {
            c.append(" ng.job=send,").append(HOST_TAP).append(':').append(TAP_PORT + r).append(',').append(bytes)
                    .append(",tap-").append(r);
            c.append(" ng.job=send,").append(GATEWAY).append(':').append(loopbackPorts[r - 1]).append(',').append(bytes)
                    .append(",passt-").append(r);
        }
        return c.toString();
    }

    /** The receivers' jobs: in the namespace for the tap, on 127.0.0.1 for passt. */
    static List<String> sinkJobs(String backend, long bytes, int[] loopbackPorts) {
        List<String> jobs = new ArrayList<>(List.of("ng.wait=" + JOB_SECONDS));
        for (int r = 1; r <= ROUNDS; r++) {
            String at = backend.equals("tap") ? HOST_TAP + ":" + (TAP_PORT + r) : "127.0.0.1:" + loopbackPorts[r - 1];
            jobs.add("ng.job=sink," + at + "," + bytes + "," + backend + "-" + r);
        }
        return jobs;
    }

    /** Free ports on the loopback, one per round (the host's other programs share it). */
    static int[] freeLoopbackPorts() throws IOException {
        int[] ports = new int[ROUNDS];
        List<ServerSocket> held = new ArrayList<>();
        try {
            for (int i = 0; i < ROUNDS; i++) {
                ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
                held.add(s);
                ports[i] = s.getLocalPort();
            }
        } finally {
            for (ServerSocket s : held) {
                s.close();
            }
        }
        return ports;
    }

    /** A helper process of one boot (passt, a receiver, QEMU): output to a file, killed when closed. */
    static final class Helper implements AutoCloseable {
        private final String what;
        private final Process process;
        private final Path log;

        Helper(String what, List<String> command, Path log) throws IOException {
            this.what = what;
            this.log = log;
            this.process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
        }

        boolean alive() {
            return process.isAlive();
        }

        String output() throws IOException {
            return Files.exists(log) ? Files.readString(log, StandardCharsets.ISO_8859_1) : "";
        }

        /** Waits for it to end by itself; its exit status and output. */
        ChildProcess.Result finish(Duration limit) throws IOException, InterruptedException {
            int status = ChildProcess.waitFor(process, what, limit);
            return new ChildProcess.Result(status, output());
        }

        @Override
        public void close() throws IOException, InterruptedException {
            if (process.isAlive()) {
                ChildProcess.kill(process);
            }
            Files.deleteIfExists(log);
        }
    }

    /**
     * passt as both VMMs get it: in the foreground, for one client, at the guest address and gateway
     * the guest uses, no DNS. As root it becomes nobody, who must be able to create its socket.
     */
    static List<String> passtCommand(Path passt, Path socket, boolean root, boolean defaultRoute) {
        List<String> c = new ArrayList<>(List.of(passt.toString(), "--foreground", "--one-off", "--socket", socket.toString(), "-q"));
        if (root) {
            c.addAll(List.of("--runas", "nobody"));
        }
        if (!defaultRoute) {
            // with no default route passt finds no interface to copy its set-up from
            c.addAll(List.of("-4", "-i", "lo"));
        }
        c.addAll(List.of("-a", GUEST_PASST, "-n", "24", "-g", GATEWAY, "--dns", "none", "--no-dhcp-dns", "--no-dhcp-search"));
        return c;
    }

    /**
     * Starts passt with its socket in {@code socketDir}, a directory of its own at the top of the
     * temporary directory: as root passt runs as nobody, who must reach it.
     */
    private static Helper startPasst(Setup s, Path socketDir) throws IOException, InterruptedException {
        boolean root = HostTool.runningAsRoot();
        if (root) {
            UserPrincipal nobody = socketDir.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName("nobody");
            Files.setOwner(socketDir, nobody);
        }
        Path socket = socketDir.resolve("passt.sock");
        boolean defaultRoute = Files.readAllLines(Path.of("/proc/net/route")).stream().skip(1)
                .map(l -> l.trim().split("\\s+")).anyMatch(f -> f.length > 7 && f[1].equals("00000000") && f[7].equals("00000000"));
        Helper h = new Helper("passt", passtCommand(s.passt(), socket, root, defaultRoute), s.dir().resolve("passt.log"));
        long deadline = System.nanoTime() + START.toNanos();
        while (!Files.exists(socket)) {
            if (!h.alive() || System.nanoTime() > deadline) {
                String log = h.output();
                h.close();
                throw new IllegalStateException("passt did not create its socket " + socket + Bench.lastLines(log));
            }
            Thread.sleep(20);
        }
        return h;
    }

    private static Path passtDirectory() throws IOException {
        return Files.createTempDirectory("kindling-bench-passt-",
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
    }

    private static Helper startSink(Setup s, String backend, int[] loopbackPorts) throws IOException {
        List<String> cmd = new ArrayList<>();
        if (backend.equals("tap")) {
            cmd.addAll(List.of(s.ipTool().toString(), "netns", "exec", s.namespace()));
        }
        cmd.add(s.program().toString());
        cmd.addAll(sinkJobs(backend, s.bytes(), loopbackPorts));
        return new Helper("the " + backend + " receiver", cmd, s.dir().resolve(backend + "-sink.log"));
    }

    /** Each receiver must have ended by itself, having got every byte of every round. */
    private static void checkSink(Helper sink, String backend) throws IOException, InterruptedException {
        ChildProcess.Result r = sink.finish(TOOL);
        if (r.exitStatus() != 0 || !r.output().contains("NETGUEST-DONE 0")) {
            throw new IllegalStateException("the " + backend + " receiver exited " + r.exitStatus() + Bench.lastLines(r.output()));
        }
    }

    static List<String> kindling(Setup s, Workspace.GuestKernel k, Path initramfs, String tap) throws Exception {
        int[] ports = freeLoopbackPorts();
        String cmdline = guestCmdline(k.cmdline(), s.bytes(), ports);
        Path socketDir = passtDirectory();
        try (Helper passt = startPasst(s, socketDir);
                Microvm vm = Microvm.builder().name("bench-net").memoryMib(MEM_MIB).kernel(k.vmlinux()).initrd(initramfs)
                        .cmdline(cmdline)
                        .virtioNet(NetworkInterface.tap("tap", tap).withMac(MAC_TAP))
                        .virtioNet(NetworkInterface.passt("passt", PasstOptions.connectTo(socketDir.resolve("passt.sock")))
                                .withMac(MAC_PASST)).build()) {
            // Kindling made the tap here; its host side goes into the namespace, where the receiver is
            s.ip("link", "set", tap, "netns", s.namespace());
            s.configureTap(tap);
            try (Helper tapSink = startSink(s, "tap", ports); Helper passtSink = startSink(s, "passt", ports)) {
                vm.start();
                Optional<StopReason> why = vm.awaitExit(LIMIT);
                String text = vm.console().text();
                if (why.isEmpty() || !why.get().isClean()) {
                    throw new IllegalStateException("Kindling: the guest did not end by itself within " + LIMIT + " (" + why + ")"
                            + Bench.lastLines(text));
                }
                List<String> lines = results("Kindling", text);
                checkSink(tapSink, "tap");
                checkSink(passtSink, "passt");
                return lines;
            }
        } finally {
            deleteTree(socketDir);
        }
    }

    /**
     * QEMU's microvm as bench blk runs it (ACPI off: the devices go on the kernel command line), inside
     * the namespace, where it makes the tap itself; its passt socket is a path, which reaches across.
     */
    static List<String> qemuCommand(Setup s, Path qemu, Workspace.GuestKernel k, Path initramfs, String cmdline, String tap,
            Path passtSocket) {
        List<String> cmd = new ArrayList<>(List.of(s.ipTool().toString(), "netns", "exec", s.namespace()));
        for (String arg : BootBench.qemuMicrovm(qemu, MEM_MIB)) {
            cmd.add(arg.equals("microvm") ? "microvm,acpi=off" : arg);
        }
        cmd.addAll(List.of("-device", "isa-debug-exit,iobase=0x64,iosize=1",
                "-kernel", k.vmlinux().toString(), "-initrd", initramfs.toString(), "-append", cmdline,
                "-netdev", "tap,id=t,ifname=" + tap + ",script=no,downscript=no,vhost=off",
                "-device", "virtio-net-device,netdev=t,mac=" + MAC_TAP,
                "-netdev", "stream,id=p,server=off,addr.type=unix,addr.path=" + passtSocket,
                "-device", "virtio-net-device,netdev=p,mac=" + MAC_PASST));
        return cmd;
    }

    static List<String> qemu(Setup s, Path qemu, Workspace.GuestKernel k, Path initramfs, String tap) throws Exception {
        int[] ports = freeLoopbackPorts();
        String cmdline = guestCmdline(k.cmdline(), s.bytes(), ports);
        Path socketDir = passtDirectory();
        try (Helper passt = startPasst(s, socketDir);
                Helper vm = new Helper("QEMU", qemuCommand(s, qemu, k, initramfs, cmdline, tap, socketDir.resolve("passt.sock")),
                        s.dir().resolve("qemu.log"))) {
            awaitTap(s, tap, vm);
            s.configureTap(tap);
            try (Helper tapSink = startSink(s, "tap", ports); Helper passtSink = startSink(s, "passt", ports)) {
                ChildProcess.Result r = vm.finish(LIMIT);
                if (r.exitStatus() != QEMU_GUEST_EXIT) {
                    throw new IllegalStateException("QEMU exited " + r.exitStatus() + ", not by the guest's reboot" + Bench.lastLines(r.output()));
                }
                List<String> lines = results("QEMU", r.output());
                checkSink(tapSink, "tap");
                checkSink(passtSink, "passt");
                return lines;
            }
        } finally {
            deleteTree(socketDir);
        }
    }

    /** Waits for QEMU to have made its tap in the namespace. */
    private static void awaitTap(Setup s, String tap, Helper vm) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + START.toNanos();
        while (true) {
            ChildProcess.Result r = ChildProcess.run(TOOL, List.of(s.ipTool().toString(), "-n", s.namespace(), "link", "show", tap));
            if (r.exitStatus() == 0) {
                return;
            }
            if (!vm.alive() || System.nanoTime() > deadline) {
                throw new IllegalStateException("QEMU did not make tap " + tap + " within " + START + Bench.lastLines(vm.output()));
            }
            Thread.sleep(50);
        }
    }

    /** The program's result lines; an error line or a failed job is a failure. */
    static List<String> results(String side, String console) {
        return Bench.guestResults(side, console, "NETGUEST-ERROR", "NETGUEST-DONE 0", "NETGUEST-OK ");
    }


    /** {@code NETGUEST-OK <backend>-<round> send <bytes> <sum> <ns>} lines to KiB/s per backend. */
    static Figures parse(List<String> lines) {
        List<List<Double>> rows = List.of(new ArrayList<>(), new ArrayList<>());
        for (String l : lines) {
            String[] f = l.split("\\s+");
            int dash = f.length == 6 ? f[1].lastIndexOf('-') : -1;
            int row = dash < 0 ? -1 : List.of(BACKENDS).indexOf(f[1].substring(0, dash));
            if (row < 0 || !f[2].equals("send")) {
                throw new IllegalStateException("unexpected result line '" + l + "'");
            }
            double bytes = Double.parseDouble(f[3]), seconds = Long.parseLong(f[5]) / 1e9;
            rows.get(row).add(bytes / 1024 / seconds);
        }
        List<double[]> out = new ArrayList<>();
        for (List<Double> r : rows) {
            if (r.isEmpty()) {
                throw new IllegalStateException("no results in the guest's output");
            }
            out.add(r.stream().mapToDouble(Double::doubleValue).toArray());
        }
        return new Figures(out);
    }

    /**
     * A newc cpio with {@code /dev} (devtmpfs' mount point), {@code /dev/console} (init's standard
     * streams), {@code /proc} (where the program reads its command line) and {@code /init}.
     */
    static void writeInitramfs(Path cpio, byte[] init) throws IOException {
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(cpio))) {
            Initramfs.builder().directory("dev").charDevice("dev/console", 5, 1).directory("proc")
                    .file("init", init, 0755).writeTo(out);
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> all = Files.walk(dir)) {
            for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
