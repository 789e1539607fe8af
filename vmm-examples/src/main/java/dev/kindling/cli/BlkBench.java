package dev.kindling.cli;

import dev.kindling.boot.Initramfs;
import dev.kindling.devices.virtio.blk.BlkOptions;
import dev.kindling.machine.StopReason;
import dev.kindling.microvm.Microvm;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * {@code kindling bench blk}: virtio-blk throughput measured inside the guest. The test kernel boots
 * a bench-only initramfs whose {@code /init} is {@code guests/bench/blkbench.c} (static, built here):
 * it reads and writes {@code /dev/vda} with O_DIRECT, sequentially and in random 4 KiB reads, and
 * prints what it took. Kindling (in this JVM) and QEMU's microvm (a process, with
 * {@code virtio-blk-device}) boot the same kernel, program and image, alternating; the host's page
 * cache, read and written the same way from this JVM, is the limit both approach.
 */
final class BlkBench {
    static final int MEM_MIB = 64;
    static final int BLOCK_KIB = 256;
    static final int ROUNDS = 3;
    static final Duration LIMIT = Duration.ofMinutes(10);
    /** Random 4 KiB reads the host-side figure takes: enough for a stable rate, far more than a guest can do. */
    static final int HOST_OPS = 20000;
    /** isa-debug-exit on port 0x64 turns the guest's reboot (0xfe there) into QEMU's exit with this status. */
    static final int QEMU_GUEST_EXIT = StartupBench.QEMU_GUEST_EXIT;
    static final String[] ROWS = {"seq-read-mib-s", "seq-write-mib-s", "randread-4k-iops"};

    private BlkBench() {}

    /** One side's figures, per round: [row][round]. */
    record Figures(List<double[]> rows) {
        double median(int row) {
            return Bench.median(rows.get(row));
        }
    }

    static int run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Args a = new Args(argv, Set.of("runs", "mib", "ops"), Set.of());
        int runs = a.intValue("runs", 3);
        int mib = a.intValue("mib", 2);
        int ops = a.intValue("ops", 32);
        if (runs < 1) {
            throw new UsageException("--runs must be at least 1");
        }
        if (mib < 1 || mib > 1024) {
            throw new UsageException("--mib must be between 1 and 1024");
        }
        if (ops < 1) {
            throw new UsageException("--ops must be at least 1");
        }
        if (!a.positional().isEmpty()) {
            throw new UsageException("bench blk takes no arguments besides its options, got '" + a.positional().getFirst() + "'");
        }
        Path qemu = HostTool.QEMU.require(err);
        Path program = Workspace.buildGuestTarget("blkbench", err);
        Workspace.GuestKernel k = Workspace.kernel(err);
        // tsc=reliable: no clocksource watchdog, which on a loaded host can stall the boot before
        // the switch to kvm-clock (both VMMs alike)
        String cmdline = k.cmdline() + " quiet tsc=reliable bb_mib=" + mib + " bb_block=" + BLOCK_KIB + " bb_ops=" + ops
                + " bb_rounds=" + ROUNDS;

        Path dir = Files.createTempDirectory("kindling-bench-blk-");
        Path initramfs = dir.resolve("initramfs.cpio");
        Path image = dir.resolve("disk.img");
        try {
            writeInitramfs(initramfs, Files.readAllBytes(program));
            writeImage(image, (long) mib << 20);
            List<String> kindlingLines = new ArrayList<>(), qemuLines = new ArrayList<>();
            for (int r = 1; r <= runs; r++) {
                List<String> kl = kindling(k, initramfs, image, cmdline);
                err.printf("bench blk: run %d kindling %s%n", r, summary(parse(kl)));
                kindlingLines.addAll(kl);
                List<String> ql = qemu(qemu, k, initramfs, image, cmdline);
                err.printf("bench blk: run %d qemu     %s%n", r, summary(parse(ql)));
                qemuLines.addAll(ql);
            }
            Figures kindling = parse(kindlingLines), qemuFigures = parse(qemuLines);
            double[] host = hostPageCache(image, ops);
            out.printf("%-20s %10s %10s %7s %12s%n", "metric (median)", "kindling", "qemu", "ratio", "host-cache");
            double[] ratio = new double[ROWS.length];
            for (int i = 0; i < ROWS.length; i++) {
                double kv = kindling.median(i), qv = qemuFigures.median(i);
                ratio[i] = kv / qv;
                out.printf("%-20s %10.1f %10.1f %7.2f %12.1f%n", ROWS[i], kv, qv, ratio[i], host[i]);
            }
            out.printf("(%d run(s) of %d rounds each, alternating; in the guest: O_DIRECT on /dev/vda, %d MiB sequential"
                            + " in %d KiB requests, %d random 4 KiB reads; %d MiB, 1 vCPU, %s; QEMU -M microvm"
                            + " virtio-blk-device, cache=writeback; host-cache: this JVM on the same file, second pass;"
                            + " ratio = kindling / qemu, above 1 is better)%n",
                    runs, ROUNDS, mib, BLOCK_KIB, ops, MEM_MIB, k.vmlinux().getFileName());
            out.printf("blk: seq-read-ratio %.2f seq-write-ratio %.2f randread-ratio %.2f%n", ratio[0], ratio[1], ratio[2]);
            return 0;
        } finally {
            Files.deleteIfExists(initramfs);
            Files.deleteIfExists(image);
            Files.deleteIfExists(dir);
        }
    }

    private static String summary(Figures f) {
        return String.format("seq-read %.1f MiB/s, seq-write %.1f MiB/s, randread-4k %.0f IOPS", f.median(0), f.median(1), f.median(2));
    }

    static List<String> kindling(Workspace.GuestKernel k, Path initramfs, Path image, String cmdline) throws Exception {
        // its writes are synchronized: the serial port's thread writes, this one reads at the end
        ByteArrayOutputStream console = new ByteArrayOutputStream();
        Optional<StopReason> why;
        try (Microvm vm = Microvm.builder().name("bench-blk").memoryMib(MEM_MIB).kernel(k.vmlinux()).initrd(initramfs)
                .cmdline(cmdline).serialOutput(console).virtioBlk(image, BlkOptions.defaults()).build()) {
            vm.start();
            why = vm.awaitExit(LIMIT);
        }
        String text = console.toString(StandardCharsets.ISO_8859_1);
        if (why.isEmpty() || !why.get().isClean()) {
            throw new IllegalStateException("Kindling: the guest did not end by itself within " + LIMIT + " (" + why + ")"
                    + Bench.lastLines(text));
        }
        return results("Kindling", text);
    }

    /**
     * QEMU's microvm as bench boot runs it, with ACPI off: the test kernel has no ACPI, and without
     * ACPI microvm lists its virtio-mmio devices on the kernel command line, as Kindling does.
     */
    static List<String> qemu(Path qemu, Workspace.GuestKernel k, Path initramfs, Path image, String cmdline) throws Exception {
        List<String> cmd = new ArrayList<>();
        for (String arg : BootBench.qemuMicrovm(qemu, MEM_MIB)) {
            cmd.add(arg.equals("microvm") ? "microvm,acpi=off" : arg);
        }
        cmd.addAll(List.of("-device", "isa-debug-exit,iobase=0x64,iosize=1",
                "-kernel", k.vmlinux().toString(), "-initrd", initramfs.toString(), "-append", cmdline,
                "-drive", "file=" + image + ",if=none,format=raw,id=d", "-device", "virtio-blk-device,drive=d"));
        ChildProcess.Result r = ChildProcess.run(LIMIT, cmd);
        if (r.exitStatus() != QEMU_GUEST_EXIT) {
            throw new IllegalStateException("QEMU exited " + r.exitStatus() + ", not by the guest's reboot" + Bench.lastLines(r.output()));
        }
        return results("QEMU", r.output());
    }

    /** The program's result lines; an error line or a missing end marker is a failure. */
    static List<String> results(String side, String console) {
        return Bench.guestResults(side, console, "BLKBENCH-ERROR", "BLKBENCH-DONE", "BLKBENCH ");
    }

    /** {@code BLKBENCH <row> <round> <amount> <ns>} lines to rates: MiB/s for the sequential rows, requests/s for randread. */
    static Figures parse(List<String> lines) {
        List<List<Double>> rows = List.of(new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
        for (String l : lines) {
            String[] f = l.split("\\s+");
            if (f.length != 5) {
                throw new IllegalStateException("unexpected result line '" + l + "'");
            }
            double amount = Double.parseDouble(f[3]), seconds = Long.parseLong(f[4]) / 1e9;
            switch (f[1]) {
                case "seq-read" -> rows.get(0).add(amount / (1 << 20) / seconds);
                case "seq-write" -> rows.get(1).add(amount / (1 << 20) / seconds);
                case "randread-4k" -> rows.get(2).add(amount / seconds);
                default -> throw new IllegalStateException("unexpected result line '" + l + "'");
            }
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

    /** The image: every byte written, so neither side reads a hole. */
    static void writeImage(Path image, long bytes) throws IOException {
        byte[] block = new byte[BLOCK_KIB << 10];
        for (int i = 0; i < block.length; i++) {
            block[i] = (byte) (i * 13 + 1);
        }
        try (OutputStream out = Files.newOutputStream(image)) {
            for (long done = 0; done < bytes; done += block.length) {
                out.write(block, 0, (int) Math.min(block.length, bytes - done));
            }
        }
    }

    /**
     * The same three figures from this JVM on the image in the host's page cache: sequential read and
     * write in the guest's request size (each pass twice, the second timed; writes stay in the page
     * cache), random 4 KiB reads after one untimed pass.
     */
    static double[] hostPageCache(Path image, int guestOps) throws IOException {
        ByteBuffer block = ByteBuffer.allocateDirect(BLOCK_KIB << 10);
        ByteBuffer page = ByteBuffer.allocateDirect(4096);
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long size = ch.size();
            double[] r = new double[3];
            for (int pass = 0; pass < 2; pass++) {
                long t0 = System.nanoTime();
                for (long off = 0; off < size; off += block.capacity()) {
                    block.clear();
                    while (block.hasRemaining() && ch.read(block, off + block.position()) > 0) {
                        // until the block is full
                    }
                }
                r[0] = size / (double) (1 << 20) / ((System.nanoTime() - t0) / 1e9);
            }
            for (int pass = 0; pass < 2; pass++) {
                long t0 = System.nanoTime();
                for (long off = 0; off < size; off += block.capacity()) {
                    block.clear();
                    while (block.hasRemaining()) {
                        ch.write(block, off + block.position());
                    }
                }
                r[1] = size / (double) (1 << 20) / ((System.nanoTime() - t0) / 1e9);
            }
            int ops = Math.max(HOST_OPS, guestOps);
            long x = 0x9e3779b97f4a7c15L;
            for (int pass = 0; pass < 2; pass++) {
                long t0 = System.nanoTime();
                for (int i = 0; i < ops; i++) {
                    x ^= x << 13;
                    x ^= x >>> 7;
                    x ^= x << 17;
                    page.clear();
                    ch.read(page, Long.remainderUnsigned(x, size >> 12) << 12);
                }
                r[2] = ops / ((System.nanoTime() - t0) / 1e9);
            }
            return r;
        }
    }

    /**
     * A newc cpio with {@code /dev} (the mount point for devtmpfs), {@code /dev/console} (the kernel
     * opens it for init's standard streams before init runs) and {@code /init}.
     */
    static void writeInitramfs(Path cpio, byte[] init) throws IOException {
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(cpio))) {
            Initramfs.builder().directory("dev").charDevice("dev/console", 5, 1).file("init", init, 0755).writeTo(out);
        }
    }
}
