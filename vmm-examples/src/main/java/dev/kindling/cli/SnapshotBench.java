package dev.kindling.cli;

import dev.kindling.microvm.Microvm;
import dev.kindling.microvm.Snapshot;
import dev.kindling.sandbox.ExecResult;
import dev.kindling.sandbox.Sandbox;
import dev.kindling.sandbox.SandboxSnapshot;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.OptionalDouble;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * {@code kindling bench snapshot}: how fast a running microVM is saved and brought back, in this JVM.
 * With the freestanding {@code snapserial} guest (16 MiB; it prints {@code count=N tag=T} lines):
 * {@code vm.snapshot()} and {@code vm.snapshot(dir)}, then {@code snap.clone()} and
 * {@code Microvm.restore(dir)} each timed to the guest's first new console line, and the clone's own
 * host memory ({@code GuestMemory.privateBytes()}). With a booted sandbox (the Linux guest and its
 * agent, 128 MiB, booted once per run): {@code sandbox.snapshot()} and its VM's {@code snapshot(dir)},
 * then {@code SandboxSnapshot.newSandbox()} to its return (the agent answered) and to its first
 * {@code exec("true")} result, and the clone's own memory after that exec. Next to it QEMU's microvm
 * with the same snapserial guest in the same run: {@code stop} and {@code migrate "exec:cat > FILE"}
 * on its monitor, then a new QEMU with {@code -incoming "exec:cat FILE"} timed from its start to the
 * guest's first new serial line.
 */
final class SnapshotBench {
    static final String GUEST = "snapserial.elf";
    static final int GUEST_MIB = 16;
    static final int SANDBOX_MIB = 128;
    static final Duration LIMIT = Duration.ofMinutes(2);
    static final Duration BOOT_LIMIT = Duration.ofMinutes(10);
    /** A line the guest began after the snapshot: the part of a line cut by the snapshot does not start with "count=". */
    static final Pattern NEW_LINE = Pattern.compile("^count=\\d+ tag=\\d");
    /** Lines the guest printed before the snapshot is taken, so that it is well into its loop. */
    static final int WARM_LINES = 5;

    private SnapshotBench() {}

    record Options(int runs, boolean sandbox) {}

    /** One run with snapserial, milliseconds (private memory in MiB). */
    record Guest(double snapMemMs, double snapDiskMs, double cloneLineMs, double restoreLineMs, double clonePrivateMib) {}

    /** One run with a booted sandbox, milliseconds (private memory in MiB). */
    record Boxed(double snapMemMs, double snapDiskMs, double cloneAgentMs, double cloneExecMs, double clonePrivateMib) {}

    /** A run whose sandbox was snapshotted but whose clone failed ({@code why}): its clone figures are NaN, left out. */
    static Boxed cloneFailed(double snapMemMs, double snapDiskMs) {
        return new Boxed(snapMemMs, snapDiskMs, Double.NaN, Double.NaN, Double.NaN);
    }

    /** One QEMU save and restore of snapserial, milliseconds. */
    record Qemu(double saveMs, double restoreLineMs) {}

    record Results(List<Guest> guest, List<Boxed> sandbox, List<Qemu> qemu, String qemuNote, List<String> cloneFailures) {}

    static Options options(List<String> argv) {
        Args a = new Args(argv, Set.of("runs"), Set.of("no-sandbox"));
        Options o = new Options(a.intValue("runs", 3), !a.has("no-sandbox"));
        if (o.runs() < 1 || o.runs() > 20) {
            throw new UsageException("--runs must be between 1 and 20");
        }
        if (!a.positional().isEmpty()) {
            throw new UsageException("bench snapshot takes no arguments besides its options, got '" + a.positional().getFirst() + "'");
        }
        return o;
    }

    static int run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Options o = options(argv);
        Workspace.buildGuests(err);
        Path guest = Workspace.guest(GUEST);
        Path qemu = null;
        String qemuNote = "QEMU -M microvm, same guest";
        try {
            qemu = HostTool.QEMU.require(err);
        } catch (PrerequisiteException e) {
            qemuNote = "QEMU left out: " + e.getMessage();
            err.println("bench snapshot: " + qemuNote);
        }
        Workspace.GuestKernel k = o.sandbox() ? Workspace.kernel(err) : null;
        table(measure(o, guest, qemu, qemuNote, k, err), o).forEach(out::println);
        return 0;
    }

    /** The runs: snapserial from {@code guest}, QEMU when {@code qemu} is not null, the sandbox when {@code k} is not null. */
    static Results measure(Options o, Path guest, Path qemu, String qemuNote, Workspace.GuestKernel k, PrintStream err)
            throws Exception {
        List<Guest> guests = new ArrayList<>();
        List<Boxed> boxes = new ArrayList<>();
        List<Qemu> qemus = new ArrayList<>();
        List<String> cloneFailures = new ArrayList<>();
        Path work = Files.createTempDirectory("kindling-bench-snapshot-");
        try {
            for (int r = 1; r <= o.runs(); r++) {
                guests.add(guest(guest, work.resolve("guest-" + r)));
                err.printf("bench snapshot: run %d snapserial %s%n", r, guests.getLast());
                if (qemu != null) {
                    try {
                        qemus.add(qemu(qemu, guest, work.resolve("qemu-" + r)));
                        err.printf("bench snapshot: run %d qemu       %s%n", r, qemus.getLast());
                    } catch (IllegalStateException | IOException e) {
                        err.println("bench snapshot: run " + r + " qemu: " + e.getMessage());
                        qemuNote = "QEMU left out: " + e.getMessage().lines().findFirst().orElse("");
                    }
                }
                if (k != null) {
                    boxes.add(sandbox(k, work.resolve("sandbox-" + r), err, cloneFailures));
                    err.printf("bench snapshot: run %d sandbox    %s%n", r, boxes.getLast());
                }
            }
        } finally {
            deleteTree(work);
        }
        return new Results(guests, boxes, qemus, qemuNote, cloneFailures);
    }

    private static double ms(long from) {
        return (System.nanoTime() - from) / 1e6;
    }

    private static double mib(long bytes) {
        return bytes / (1024.0 * 1024);
    }

    private static void awaitNewLine(Microvm vm, String what) throws InterruptedException {
        if (vm.console().awaitText(NEW_LINE, LIMIT).isEmpty()) {
            throw new IllegalStateException(what + ": no new console line within " + LIMIT + Bench.lastLines(vm.console().text()));
        }
    }

    static Guest guest(Path elf, Path dir) throws Exception {
        try (Microvm vm = Microvm.builder().name("bench-snapshot").memoryMib(GUEST_MIB).kernel(elf).build()) {
            vm.start();
            if (!vm.console().awaitText("count=" + WARM_LINES + " ", LIMIT)) {
                throw new IllegalStateException("snapserial did not print " + WARM_LINES + " lines" + Bench.lastLines(vm.console().text()));
            }
            long t0 = System.nanoTime();
            try (Snapshot snap = vm.snapshot()) {
                double snapMem = ms(t0);
                t0 = System.nanoTime();
                vm.snapshot(dir);
                double snapDisk = ms(t0);
                vm.close(); // only the copies run from here on
                t0 = System.nanoTime();
                double cloneLine, privateMib;
                try (Microvm c = snap.clone()) {
                    awaitNewLine(c, "the clone");
                    cloneLine = ms(t0);
                    privateMib = mib(c.machine().memory().privateBytes());
                }
                t0 = System.nanoTime();
                double restoreLine;
                try (Microvm back = Microvm.restore(dir)) {
                    awaitNewLine(back, "the restored microVM");
                    restoreLine = ms(t0);
                }
                return new Guest(snapMem, snapDisk, cloneLine, restoreLine, privateMib);
            }
        }
    }

    static Boxed sandbox(Workspace.GuestKernel k, Path dir, PrintStream err, List<String> failures) throws Exception {
        try (Sandbox s = Sandbox.builder().name("bench-snapshot").memoryMib(SANDBOX_MIB).vcpus(1).kernel(k.vmlinux())
                .initrd(k.initramfs()).kernelArgs(k.cmdline()).bootTimeout(BOOT_LIMIT).build()) {
            check(s.exec("true"), "the booted sandbox's exec");
            long t0 = System.nanoTime();
            try (SandboxSnapshot snap = s.snapshot()) {
                double snapMem = ms(t0);
                t0 = System.nanoTime();
                s.vm().snapshot(dir);
                double snapDisk = ms(t0);
                t0 = System.nanoTime();
                try (Sandbox c = snap.newSandbox()) {
                    double agent = ms(t0);
                    check(c.exec("true"), "the clone's first exec");
                    double exec = ms(t0);
                    return new Boxed(snapMem, snapDisk, agent, exec, mib(c.vm().machine().memory().privateBytes()));
                } catch (RuntimeException e) {
                    // the snapshot figures stand; the table's note says the clone failed and why
                    err.println("bench snapshot: the sandbox's clone failed: " + e.getMessage());
                    failures.add(e.getMessage() == null ? e.toString() : e.getMessage().lines().findFirst().orElse(""));
                    return cloneFailed(snapMem, snapDisk);
                }
            }
        }
    }

    private static void check(ExecResult r, String what) {
        if (!r.succeeded()) {
            throw new IllegalStateException(what + ": exec(\"true\") gave " + r);
        }
    }

    /** Serial bytes from a QEMU process: when the first new line (as {@link #NEW_LINE}) began, since {@code t0}. */
    static final class LineWatch extends OutputStream {
        private final long t0;
        private final StringBuilder text = new StringBuilder();
        private long lineAt = -1;
        private long lines;

        LineWatch(long t0) {
            this.t0 = t0;
        }

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) {
            long now = System.nanoTime();
            for (int i = off; i < off + len; i++) {
                char c = (char) (b[i] & 0xff);
                if (c == '\n') {
                    lines++;
                    text.setLength(0);
                    notifyAll();
                } else if (text.length() < 256) {
                    text.append(c);
                    if (lineAt < 0 && NEW_LINE.matcher(text).find()) {
                        lineAt = now - t0;
                        notifyAll();
                    }
                }
            }
        }

        /** Nanoseconds from t0 to the first new line, or -1 after the limit. */
        synchronized long awaitLine(Duration limit) throws InterruptedException {
            long deadline = System.nanoTime() + limit.toNanos();
            while (lineAt < 0 && System.nanoTime() < deadline) {
                wait(50);
            }
            return lineAt;
        }

        synchronized boolean awaitLines(long n, Duration limit) throws InterruptedException {
            long deadline = System.nanoTime() + limit.toNanos();
            while (lines < n && System.nanoTime() < deadline) {
                wait(50);
            }
            return lines >= n;
        }
    }

    private static Process startQemu(List<String> cmd, LineWatch w) throws IOException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
        Thread.ofPlatform().daemon().start(() -> {
            try (InputStream in = p.getInputStream()) {
                in.transferTo(w);
            } catch (IOException ignored) {
                // the process ended
            }
        });
        return p;
    }

    private static List<String> qemuCommand(Path qemu, Path elf, Path monitor) {
        List<String> cmd = new ArrayList<>(BootBench.qemuMicrovm(qemu, GUEST_MIB));
        cmd.addAll(List.of("-device", "isa-debug-exit,iobase=0x64,iosize=1", "-kernel", elf.toString(),
                "-monitor", "unix:" + monitor + ",server=on,wait=off"));
        return cmd;
    }

    /** QEMU: boot snapserial, stop and migrate it to a file, then a new QEMU from that file to its first new line. */
    static Qemu qemu(Path qemu, Path elf, Path dir) throws Exception {
        Files.createDirectories(dir);
        Path state = dir.resolve("vmstate");
        Path monitor = dir.resolve("monitor.sock");
        LineWatch first = new LineWatch(System.nanoTime());
        Process p = startQemu(qemuCommand(qemu, elf, monitor), first);
        double saveMs;
        try {
            if (!first.awaitLines(WARM_LINES, LIMIT)) {
                throw new IllegalStateException("QEMU: snapserial printed no " + WARM_LINES + " lines within " + LIMIT);
            }
            try (Hmp hmp = Hmp.connect(monitor, p)) {
                long t0 = System.nanoTime();
                hmp.command("stop");
                // -d: the monitor answers at once; without it HMP looks at the migration only once a second
                hmp.command("migrate -d \"exec:cat > " + state + "\"");
                long deadline = System.nanoTime() + LIMIT.toNanos();
                while (true) {
                    String info = hmp.command("info migrate");
                    if (info.contains("Migration status: completed")) {
                        break;
                    }
                    if (info.contains("Migration status: failed") || System.nanoTime() > deadline) {
                        throw new IllegalStateException("QEMU: migration did not complete: " + info.strip());
                    }
                    Thread.sleep(1);
                }
                saveMs = ms(t0);
                hmp.command("quit");
            }
            p.waitFor(10, java.util.concurrent.TimeUnit.SECONDS);
        } finally {
            ChildProcess.kill(p);
        }
        Path monitor2 = dir.resolve("monitor2.sock");
        List<String> cmd = new ArrayList<>(qemuCommand(qemu, elf, monitor2));
        cmd.addAll(List.of("-incoming", "exec:cat " + state));
        long t0 = System.nanoTime();
        LineWatch w = new LineWatch(t0);
        Process q = startQemu(cmd, w);
        try {
            // the state says "stopped" (it was taken after stop), so the new QEMU waits paused once it is in: cont
            try (Hmp hmp = Hmp.connect(monitor2, q)) {
                long deadline = System.nanoTime() + LIMIT.toNanos();
                while (!hmp.command("info status").strip().endsWith("VM status: paused")) {
                    if (System.nanoTime() > deadline) {
                        throw new IllegalStateException("QEMU: the incoming migration did not finish within " + LIMIT);
                    }
                    Thread.sleep(1);
                }
                hmp.command("cont");
            }
            long at = w.awaitLine(LIMIT);
            if (at < 0) {
                throw new IllegalStateException("QEMU: the restored guest printed no new line within " + LIMIT);
            }
            return new Qemu(saveMs, at / 1e6);
        } finally {
            ChildProcess.kill(q);
        }
    }

    /** QEMU's human monitor on a Unix socket: a command, then its output up to the next prompt. */
    private static final class Hmp implements AutoCloseable {
        private static final String PROMPT = "(qemu) ";
        private final SocketChannel ch;
        private final StringBuilder pending = new StringBuilder();

        private Hmp(SocketChannel ch) {
            this.ch = ch;
        }

        static Hmp connect(Path socket, Process p) throws Exception {
            long deadline = System.nanoTime() + LIMIT.toNanos();
            while (true) {
                SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
                try {
                    ch.connect(UnixDomainSocketAddress.of(socket));
                    Hmp h = new Hmp(ch);
                    h.untilPrompt();
                    return h;
                } catch (IOException e) {
                    ch.close();
                    if (!p.isAlive() || System.nanoTime() > deadline) {
                        throw new IllegalStateException("QEMU: no monitor on " + socket + ": " + e.getMessage());
                    }
                    Thread.sleep(10);
                }
            }
        }

        String command(String line) throws IOException {
            ch.write(ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.UTF_8)));
            return line.equals("quit") ? "" : untilPrompt();
        }

        private String untilPrompt() throws IOException {
            ByteBuffer buf = ByteBuffer.allocate(4096);
            while (true) {
                int i = pending.indexOf(PROMPT);
                if (i >= 0) {
                    String s = pending.substring(0, i);
                    pending.delete(0, i + PROMPT.length());
                    return s;
                }
                buf.clear();
                if (ch.read(buf) < 0) {
                    throw new IOException("the monitor closed");
                }
                pending.append(new String(buf.array(), 0, buf.position(), StandardCharsets.ISO_8859_1));
            }
        }

        @Override
        public void close() throws IOException {
            ch.close();
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }

    private static OptionalDouble median(List<Double> all) {
        List<Double> values = all.stream().filter(v -> !v.isNaN()).toList();
        return values.isEmpty() ? OptionalDouble.empty()
                : OptionalDouble.of(Bench.median(values.stream().mapToDouble(Double::doubleValue).toArray()));
    }

    private static String cell(OptionalDouble v) {
        return v.isPresent() ? String.format("%.2f", v.getAsDouble()) : "-";
    }

    private static String row(String name, OptionalDouble k, OptionalDouble q) {
        OptionalDouble ratio = k.isPresent() && q.isPresent() ? OptionalDouble.of(k.getAsDouble() / q.getAsDouble()) : OptionalDouble.empty();
        return String.format("%-30s %10s %10s %7s", name, cell(k), cell(q), cell(ratio));
    }

    private static OptionalDouble ratio(OptionalDouble k, OptionalDouble q) {
        return k.isPresent() && q.isPresent() ? OptionalDouble.of(k.getAsDouble() / q.getAsDouble()) : OptionalDouble.empty();
    }

    /** The table, its note and the summary line (ratio = kindling / qemu, below 1 is better for Kindling). */
    static List<String> table(Results r, Options o) {
        OptionalDouble none = OptionalDouble.empty();
        OptionalDouble gMem = median(r.guest().stream().map(Guest::snapMemMs).toList());
        OptionalDouble gDisk = median(r.guest().stream().map(Guest::snapDiskMs).toList());
        OptionalDouble gClone = median(r.guest().stream().map(Guest::cloneLineMs).toList());
        OptionalDouble gRestore = median(r.guest().stream().map(Guest::restoreLineMs).toList());
        OptionalDouble gPrivate = median(r.guest().stream().map(Guest::clonePrivateMib).toList());
        OptionalDouble qSave = median(r.qemu().stream().map(Qemu::saveMs).toList());
        OptionalDouble qRestore = median(r.qemu().stream().map(Qemu::restoreLineMs).toList());
        OptionalDouble sMem = median(r.sandbox().stream().map(Boxed::snapMemMs).toList());
        OptionalDouble sDisk = median(r.sandbox().stream().map(Boxed::snapDiskMs).toList());
        OptionalDouble sAgent = median(r.sandbox().stream().map(Boxed::cloneAgentMs).toList());
        OptionalDouble sExec = median(r.sandbox().stream().map(Boxed::cloneExecMs).toList());
        OptionalDouble sPrivate = median(r.sandbox().stream().map(Boxed::clonePrivateMib).toList());
        List<String> lines = new ArrayList<>();
        lines.add(String.format("%-30s %10s %10s %7s", "metric (median)", "kindling", "qemu", "ratio"));
        lines.add(row("guest-snapshot-memory-ms", gMem, none));
        lines.add(row("guest-snapshot-disk-ms", gDisk, qSave));
        lines.add(row("guest-restore-to-line-ms", gRestore, qRestore));
        lines.add(row("guest-clone-to-line-ms", gClone, qRestore));
        lines.add(row("guest-clone-private-mib", gPrivate, none));
        if (o.sandbox()) {
            lines.add(row("sandbox-snapshot-memory-ms", sMem, none));
            lines.add(row("sandbox-snapshot-disk-ms", sDisk, none));
            lines.add(row("sandbox-clone-to-agent-ms", sAgent, none));
            lines.add(row("sandbox-clone-to-first-exec-ms", sExec, none));
            lines.add(row("sandbox-clone-private-mib", sPrivate, none));
        }
        lines.add(String.format("(%d run(s), no warm-up; guest: snapserial, %d MiB, snapshot after its %dth line, to-line = to the"
                        + " first console line it began after the snapshot; %s: stop + migrate -d \"exec:cat > FILE\" on its monitor until info migrate says completed,"
                        + " restore = a new process with -incoming \"exec:cat FILE\" and cont on its monitor once in, from its start to that line; the clone rows"
                        + " compare with that restore too; private-mib = GuestMemory.privateBytes() of the clone after its first"
                        + " line/exec; %s; ratio = kindling / qemu, below 1 is better)",
                r.guest().size(), GUEST_MIB, WARM_LINES, r.qemuNote(),
                o.sandbox() ? "sandbox: booted once per run, " + SANDBOX_MIB + " MiB, 1 vCPU, clone = SandboxSnapshot.newSandbox(),"
                        + " to-agent = it returned, to-first-exec = exec(\"true\") answered, no disk restore (a Sandbox is only"
                        + " started from memory)" + (r.cloneFailures().isEmpty() ? "" : "; the sandbox's clone failed in "
                        + r.cloneFailures().size() + " run(s): " + r.cloneFailures().getFirst()) : "no sandbox (--no-sandbox)"));
        lines.add(String.format("snapshot: restore-ratio %s clone-ratio %s clone-line-ms %s clone-exec-ms %s clone-private-mib %s",
                cell(ratio(gRestore, qRestore)), cell(ratio(gClone, qRestore)), cell(gClone), cell(sExec),
                cell(o.sandbox() ? sPrivate : gPrivate)));
        return lines;
    }
}
