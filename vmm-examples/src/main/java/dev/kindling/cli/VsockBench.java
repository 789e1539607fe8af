package dev.kindling.cli;

import dev.kindling.boot.Initramfs;
import dev.kindling.devices.virtio.vsock.VsockConnection;
import dev.kindling.machine.StopReason;
import dev.kindling.microvm.Microvm;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code kindling bench vsock}: throughput each way and round-trip latency between this JVM and a
 * program in the guest, measured on the host. The test kernel boots a bench-only initramfs whose
 * {@code /init} is {@code guests/linux/vsockguest.c} (static, built here). Kindling's side is its
 * vsock device and {@code Microvm.vsock()}; QEMU has no {@code vhost-vsock} on these hosts, so its
 * side is the same program over a virtio-serial port ({@code virtio-serial-device} and a
 * {@code virtserialport} on a Unix-socket chardev) of its microvm. Both run the same commands: a
 * checksummed transfer host to guest, a checked one guest to host, and small echoes.
 */
final class VsockBench {
    static final int MEM_MIB = 64;
    static final long CID = 3;
    /** The guest program's command port (PORT_COMMAND there). */
    static final int COMMAND_PORT = 5003;
    static final int MESSAGE = 64;
    static final Duration LIMIT = Duration.ofMinutes(30);
    static final int QEMU_GUEST_EXIT = StartupBench.QEMU_GUEST_EXIT;
    static final String[] ROWS = {"host-to-guest-mib-s", "guest-to-host-mib-s", "rtt-" + MESSAGE + "b-us"};
    private static final long STREAM_SEED = 0x9e3779b97f4a7c15L;

    private VsockBench() {}

    /** One run of one side: MiB/s each way and the median round trip in microseconds. */
    record Sample(double hostToGuest, double guestToHost, double rttMicros) {
        double row(int i) {
            return switch (i) {
                case 0 -> hostToGuest;
                case 1 -> guestToHost;
                default -> rttMicros;
            };
        }
    }

    record Options(int runs, int kib, int echoes) {}

    static Options options(List<String> argv) {
        Args a = new Args(argv, Set.of("runs", "kib", "echoes"), Set.of());
        Options o = new Options(a.intValue("runs", 3), a.intValue("kib", 1024), a.intValue("echoes", 50));
        if (o.runs() < 1) {
            throw new UsageException("--runs must be at least 1");
        }
        if (o.kib() < 64 || o.kib() > (1 << 20) || o.kib() % 64 != 0) {
            throw new UsageException("--kib must be a multiple of 64 between 64 and 1048576");
        }
        if (o.echoes() < 1 || o.echoes() > 100000) {
            throw new UsageException("--echoes must be between 1 and 100000");
        }
        if (!a.positional().isEmpty()) {
            throw new UsageException("bench vsock takes no arguments besides its options, got '" + a.positional().getFirst() + "'");
        }
        return o;
    }

    /** Each side's samples, and the kernel both booted. */
    record Runs(List<Sample> kindling, List<Sample> qemu, String kernel) {}

    static int run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Options o = options(argv);
        Runs runs = measure(o, err);
        table(runs.kindling(), runs.qemu(), o, runs.kernel()).forEach(out::println);
        return 0;
    }

    /** The runs of {@link #run}, alternating Kindling and QEMU; also for benches that compare with vsock. */
    static Runs measure(Options o, PrintStream err) throws Exception {
        Path qemu = HostTool.QEMU.require(err);
        Path program = Workspace.buildGuestTarget("vsockguest", err);
        Workspace.GuestKernel k = Workspace.kernel(err);
        // tsc=reliable: no clocksource watchdog, which on a loaded host can stall the boot (both VMMs alike)
        String cmdline = k.cmdline() + " quiet tsc=reliable";
        Path dir = Files.createTempDirectory("kindling-bench-vsock-");
        Path initramfs = dir.resolve("initramfs.cpio");
        try {
            writeInitramfs(initramfs, Files.readAllBytes(program));
            List<Sample> kindling = new ArrayList<>(), qemuSamples = new ArrayList<>();
            for (int r = 1; r <= o.runs(); r++) {
                Sample ks = kindling(k, initramfs, cmdline + " vg_mode=serve", o);
                err.printf("bench vsock: run %d kindling %s%n", r, describe(ks));
                kindling.add(ks);
                Sample qs = qemu(qemu, k, initramfs, cmdline + " vg_mode=serial", dir.resolve("serial.sock"), o);
                err.printf("bench vsock: run %d qemu     %s%n", r, describe(qs));
                qemuSamples.add(qs);
            }
            return new Runs(kindling, qemuSamples, k.vmlinux().getFileName().toString());
        } finally {
            Files.deleteIfExists(dir.resolve("serial.sock"));
            Files.deleteIfExists(initramfs);
            Files.deleteIfExists(dir);
        }
    }

    private static String describe(Sample s) {
        return String.format("host->guest %.2f MiB/s, guest->host %.2f MiB/s, rtt %.0f us", s.hostToGuest(), s.guestToHost(), s.rttMicros());
    }

    static double median(List<Sample> samples, int row) {
        return Bench.median(samples.stream().mapToDouble(s -> s.row(row)).toArray());
    }

    /**
     * The table, its note and the summary line. Ratios are "above 1 is better for Kindling":
     * kindling / qemu for throughput, qemu / kindling for the round trip.
     */
    static List<String> table(List<Sample> kindling, List<Sample> qemu, Options o, String kernel) {
        List<String> lines = new ArrayList<>();
        lines.add(String.format("%-22s %10s %10s %7s", "metric (median)", "kindling", "qemu", "ratio"));
        double[] ratio = new double[ROWS.length];
        for (int i = 0; i < ROWS.length; i++) {
            double kv = median(kindling, i), qv = median(qemu, i);
            ratio[i] = i == 2 ? qv / kv : kv / qv;
            lines.add(String.format("%-22s %10.2f %10.2f %7.2f", ROWS[i], kv, qv, ratio[i]));
        }
        lines.add(String.format("(%d run(s) each, alternating; %d KiB each way, %d round trips of %d bytes, timed on the host;"
                        + " Kindling: virtio-vsock, guest port %d; QEMU -M microvm,acpi=off has no vhost-vsock on this host,"
                        + " so it runs the same guest program over virtio-serial (virtio-serial-device, virtserialport on a"
                        + " Unix-socket chardev); %d MiB, 1 vCPU, %s; ratio above 1: Kindling better"
                        + " (kindling / qemu for MiB/s, qemu / kindling for the round trip))",
                kindling.size(), o.kib(), o.echoes(), MESSAGE, COMMAND_PORT, MEM_MIB, kernel));
        lines.add(String.format("vsock: host-to-guest-ratio %.2f guest-to-host-ratio %.2f rtt-ratio %.2f", ratio[0], ratio[1], ratio[2]));
        return lines;
    }

    static Sample kindling(Workspace.GuestKernel k, Path initramfs, String cmdline, Options o) throws Exception {
        ByteArrayOutputStream console = new ByteArrayOutputStream();
        Sample s;
        Optional<StopReason> why;
        try (Microvm vm = Microvm.builder().name("bench-vsock").memoryMib(MEM_MIB).kernel(k.vmlinux()).initrd(initramfs)
                .cmdline(cmdline).serialOutput(console).vsock(CID).build()) {
            vm.start();
            try (VsockConnection c = vm.vsock().connect(COMMAND_PORT, LIMIT)) {
                Thread watchdog = closeAfter(LIMIT, c);
                try {
                    s = session(c.inputStream(), c.outputStream(), o);
                } finally {
                    watchdog.interrupt();
                }
            }
            why = vm.awaitExit(LIMIT);
        }
        if (why.isEmpty() || !why.get().isClean()) {
            throw new IllegalStateException("Kindling: the guest did not end after the bench (" + why + ")"
                    + Bench.lastLines(console.toString(StandardCharsets.ISO_8859_1)));
        }
        return s;
    }

    /** QEMU's microvm with ACPI off (the test kernel has none) and the guest program on a virtio-serial port. */
    static Sample qemu(Path qemu, Workspace.GuestKernel k, Path initramfs, String cmdline, Path socket, Options o) throws Exception {
        List<String> cmd = new ArrayList<>();
        for (String arg : BootBench.qemuMicrovm(qemu, MEM_MIB)) {
            cmd.add(arg.equals("microvm") ? "microvm,acpi=off" : arg);
        }
        cmd.addAll(List.of("-device", "isa-debug-exit,iobase=0x64,iosize=1",
                "-kernel", k.vmlinux().toString(), "-initrd", initramfs.toString(), "-append", cmdline,
                "-device", "virtio-serial-device", "-chardev", "socket,path=" + socket + ",server=on,wait=off,id=bench",
                "-device", "virtserialport,chardev=bench,name=bench"));
        Files.deleteIfExists(socket);
        Path log = Files.createTempFile("kindling-bench-vsock-qemu-", ".log");
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
            Sample s;
            try (SocketChannel ch = connectWhenListening(p, socket)) {
                Thread watchdog = closeAfter(LIMIT, ch);
                try {
                    s = session(Channels.newInputStream(ch), Channels.newOutputStream(ch), o);
                } finally {
                    watchdog.interrupt();
                }
            } catch (IOException | RuntimeException e) {
                ChildProcess.kill(p);
                throw new IllegalStateException("QEMU: " + e.getMessage() + Bench.lastLines(Files.readString(log, StandardCharsets.ISO_8859_1)), e);
            }
            int status = ChildProcess.waitFor(p, "qemu", LIMIT);
            if (status != QEMU_GUEST_EXIT) {
                throw new IllegalStateException("QEMU exited " + status + ", not by the guest's reboot"
                        + Bench.lastLines(Files.readString(log, StandardCharsets.ISO_8859_1)));
            }
            return s;
        } finally {
            Files.deleteIfExists(log);
            Files.deleteIfExists(socket);
        }
    }

    /** Closes {@code stream} after {@code limit} unless interrupted first: a guest that stops answering ends the bench's reads. */
    private static Thread closeAfter(Duration limit, AutoCloseable stream) {
        return Thread.ofVirtual().name("bench-vsock-watchdog").start(() -> {
            try {
                Thread.sleep(limit);
                stream.close();
            } catch (InterruptedException e) {
                // the session ended in time
            } catch (Exception e) {
                // closing is all it can do
            }
        });
    }

    /** QEMU makes its chardev socket soon after it starts; waits for it, as long as QEMU runs. */
    private static SocketChannel connectWhenListening(Process p, Path socket) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + Duration.ofMinutes(1).toNanos();
        while (true) {
            if (Files.exists(socket)) {
                return SocketChannel.open(UnixDomainSocketAddress.of(socket));
            }
            if (!p.isAlive() || System.nanoTime() > deadline) {
                throw new IOException("no chardev socket " + socket + (p.isAlive() ? " within a minute" : ": QEMU exited " + p.exitValue()));
            }
            Thread.sleep(20);
        }
    }

    /**
     * The bench on one stream to the guest program: a first echo (which waits for the guest to be
     * up), the round trips, the transfer host to guest (the guest's FNV-1a must match) and guest to
     * host (its xorshift stream, compared byte for byte), then REBOOT.
     */
    static Sample session(InputStream in, OutputStream out, Options o) throws IOException {
        byte[] msg = new byte[MESSAGE];
        Arrays.fill(msg, (byte) 'x');
        send(out, "ECHO 1 " + MESSAGE);
        out.write(msg);
        out.flush();
        expect(in, msg, "the first echo");

        send(out, "ECHO " + o.echoes() + " " + MESSAGE);
        double[] rtt = new double[o.echoes()];
        for (int i = 0; i < rtt.length; i++) {
            msg[0] = (byte) i;
            long t0 = System.nanoTime();
            out.write(msg);
            out.flush();
            expect(in, msg, "echo " + i);
            rtt[i] = (System.nanoTime() - t0) / 1e3;
        }

        long bytes = (long) o.kib() << 10;
        byte[] chunk = new byte[64 << 10];
        SplittableRandom random = new SplittableRandom(bytes);
        long hash = 0xcbf29ce484222325L;
        long t0 = System.nanoTime();
        send(out, "RECV " + bytes);
        for (long done = 0; done < bytes; done += chunk.length) {
            random.nextBytes(chunk);
            hash = fnv1a(hash, chunk);
            out.write(chunk);
        }
        out.flush();
        String reply = readLine(in);
        double toGuest = bytes / (double) (1 << 20) / ((System.nanoTime() - t0) / 1e9);
        String want = String.format("RECV %d %016x", bytes, hash);
        if (!reply.equals(want)) {
            throw new IllegalStateException("the guest's checksum: '" + reply + "', expected '" + want + "'");
        }

        long x = STREAM_SEED;
        t0 = System.nanoTime();
        send(out, "SEND " + bytes);
        for (long done = 0; done < bytes; done += chunk.length) {
            x = stream(x, chunk);
            expect(in, chunk, "the guest's stream at " + done);
        }
        double fromGuest = bytes / (double) (1 << 20) / ((System.nanoTime() - t0) / 1e9);
        send(out, "REBOOT");
        return new Sample(toGuest, fromGuest, Bench.median(rtt));
    }

    static long fnv1a(long h, byte[] b) {
        for (byte v : b) {
            h = (h ^ (v & 0xff)) * 0x100000001b3L;
        }
        return h;
    }

    /** Fills {@code out} (a multiple of 8 bytes) with the guest's stream from state {@code x}: xorshift64 states, little-endian. */
    static long stream(long x, byte[] out) {
        for (int i = 0; i < out.length; i += 8) {
            for (int b = 0; b < 8; b++) {
                out[i + b] = (byte) (x >>> (8 * b));
            }
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
        }
        return x;
    }

    private static void send(OutputStream out, String line) throws IOException {
        out.write((line + "\n").getBytes(StandardCharsets.US_ASCII));
        out.flush();
    }

    private static void expect(InputStream in, byte[] want, String what) throws IOException {
        byte[] got = in.readNBytes(want.length);
        if (!Arrays.equals(got, want)) {
            throw new IllegalStateException(what + ": " + (got.length < want.length ? "the guest's stream ended" : "wrong bytes from the guest"));
        }
    }

    private static String readLine(InputStream in) throws IOException {
        StringBuilder line = new StringBuilder();
        for (int b = in.read(); b >= 0 && b != '\n' && line.length() < 256; b = in.read()) {
            line.append((char) b);
        }
        return line.toString();
    }


    /** A newc cpio with /dev, /dev/console, /proc, /sys (the guest program mounts sysfs to find its port) and /init. */
    static void writeInitramfs(Path cpio, byte[] init) throws IOException {
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(cpio))) {
            Initramfs.builder().directory("dev").charDevice("dev/console", 5, 1).directory("proc").directory("sys")
                    .file("init", init, 0755).writeTo(out);
        }
    }
}
