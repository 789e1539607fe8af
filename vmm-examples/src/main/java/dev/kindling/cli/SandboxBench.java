package dev.kindling.cli;

import dev.kindling.sandbox.ExecResult;
import dev.kindling.sandbox.Sandbox;
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
import java.util.OptionalDouble;
import java.util.Set;

/**
 * {@code kindling bench sandbox}: what a program embedding sandboxes sees, in this JVM: the time from
 * {@code Sandbox.builder().build()} to its first {@code exec} result, the round trip of
 * {@code exec("true")} on a booted sandbox, sandboxes created and destroyed per minute (a few
 * sequential cycles, extrapolated), and host memory per idle sandbox (this JVM's RSS and PSS growth
 * with K idle sandboxes, over K). Next to it QEMU's microvm boots the same kernel and initramfs with
 * {@code kindling.action=agent} in the same run, timed from its start to the agent's ready line, and
 * measured there (its process's RSS and PSS). QEMU gets {@code vhost-vsock-device} only where
 * {@code /dev/vhost-vsock} exists; QEMU has no exec path here, so exec and churn are Kindling's only.
 */
final class SandboxBench {
    static final int MEM_MIB = 128;
    static final String READY = "KINDLING-AGENT-READY";
    static final Duration LIMIT = Duration.ofMinutes(10);
    /** How long the idle sandboxes settle before their memory is read. */
    static final Duration SETTLE = Duration.ofSeconds(3);
    static final long QEMU_CID = 3;

    private SandboxBench() {}

    record Options(int runs, int execs, int cycles, int idle) {}

    /** One boot of each side: Kindling's build() and first exec, QEMU's ready line (seconds). */
    record Boot(double agentS, double firstExecS) {}

    /** Host memory of one VM, MiB. */
    record Memory(double rssMib, double pssMib) {}

    /** Everything one bench run measured; QEMU's boots and memory are empty when its agent never got ready. */
    record Results(List<Boot> kindling, List<Double> execMillis, List<Double> cycleSeconds, Memory kindlingMemory,
            List<Double> qemuReadyS, Optional<Memory> qemuMemory, String qemuNote) {}

    static Options options(List<String> argv) {
        Args a = new Args(argv, Set.of("runs", "execs", "cycles", "idle"), Set.of());
        Options o = new Options(a.intValue("runs", 3), a.intValue("execs", 20), a.intValue("cycles", 3), a.intValue("idle", 2));
        if (o.runs() < 1 || o.runs() > 20) {
            throw new UsageException("--runs must be between 1 and 20");
        }
        if (o.execs() < 1 || o.execs() > 10000) {
            throw new UsageException("--execs must be between 1 and 10000");
        }
        if (o.cycles() < 1 || o.cycles() > 20) {
            throw new UsageException("--cycles must be between 1 and 20");
        }
        if (o.idle() < 1 || o.idle() > 8) {
            throw new UsageException("--idle must be between 1 and 8");
        }
        if (!a.positional().isEmpty()) {
            throw new UsageException("bench sandbox takes no arguments besides its options, got '" + a.positional().getFirst() + "'");
        }
        return o;
    }

    static int run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Options o = options(argv);
        Path qemu = HostTool.QEMU.require(err);
        Workspace.GuestKernel k = Workspace.kernel(err);
        boolean vhostVsock = Files.exists(Path.of("/dev/vhost-vsock"));
        String qemuCmdline = k.cmdline() + " quiet percpu_alloc=page kindling.action=agent";  // what Sandbox adds

        List<Boot> boots = new ArrayList<>();
        List<Double> execs = new ArrayList<>();
        List<Double> qemuReady = new ArrayList<>();
        Optional<Memory> qemuMemory = Optional.empty();
        String qemuNote = vhostVsock ? "QEMU with vhost-vsock-device" : "QEMU without vsock (no /dev/vhost-vsock here)";
        for (int r = 1; r <= o.runs(); r++) {
            long t0 = System.nanoTime();
            try (Sandbox s = sandbox(k)) {
                long built = System.nanoTime();
                check(s.exec("true"), "the first exec");
                long first = System.nanoTime();
                boots.add(new Boot((built - t0) / 1e9, (first - t0) / 1e9));
                for (int i = 0; i < o.execs(); i++) {
                    long e0 = System.nanoTime();
                    check(s.exec("true"), "exec " + i);
                    execs.add((System.nanoTime() - e0) / 1e6);
                }
            }
            err.printf("bench sandbox: run %d kindling build %.2f s, first exec %.2f s%n", r, boots.getLast().agentS(),
                    boots.getLast().firstExecS());
            try {
                QemuBoot q = qemu(qemu, k, qemuCmdline, vhostVsock);
                qemuReady.add(q.readyS());
                qemuMemory = Optional.of(q.memory());
                err.printf("bench sandbox: run %d qemu     ready line %.2f s, rss %.1f MiB%n", r, q.readyS(), q.memory().rssMib());
            } catch (IllegalStateException e) {
                // an agent that cannot start without vsock never prints its line: the comparison is left out, said why
                err.println("bench sandbox: run " + r + " qemu: " + e.getMessage());
                qemuNote = "QEMU left out: " + e.getMessage().lines().findFirst().orElse("");
            }
        }

        List<Double> cycles = new ArrayList<>();
        for (int c = 1; c <= o.cycles(); c++) {
            long t0 = System.nanoTime();
            try (Sandbox s = sandbox(k)) {
                check(s.exec("true"), "the cycle's exec");
            }
            cycles.add((System.nanoTime() - t0) / 1e9);
            err.printf("bench sandbox: cycle %d %.2f s%n", c, cycles.getLast());
        }

        Memory idle = idleMemory(k, o.idle());
        err.printf("bench sandbox: %d idle sandboxes: %.1f MiB RSS, %.1f MiB PSS each%n", o.idle(), idle.rssMib(), idle.pssMib());
        Results res = new Results(boots, execs, cycles, idle, qemuReady, qemuMemory, qemuNote);
        table(res, o, k.vmlinux().getFileName().toString()).forEach(out::println);
        return 0;
    }

    private static Sandbox sandbox(Workspace.GuestKernel k) {
        // with its own kernel a Sandbox has a generic base command line: add the guest's (noxsave and
        // clearcpuid, which this kind of host needs), the same one QEMU gets
        return Sandbox.builder().name("bench-sandbox").memoryMib(MEM_MIB).vcpus(1).kernel(k.vmlinux()).initrd(k.initramfs())
                .kernelArgs(k.cmdline()).bootTimeout(LIMIT).build();
    }

    private static void check(ExecResult r, String what) {
        if (!r.succeeded()) {
            throw new IllegalStateException(what + ": exec(\"true\") gave " + r);
        }
    }

    /** This JVM's memory growth with {@code count} booted, idle sandboxes, per sandbox. */
    static Memory idleMemory(Workspace.GuestKernel k, int count) throws IOException, InterruptedException {
        Path self = Path.of("/proc/self");
        long rss0 = BootBench.rssKb(self), pss0 = pssKb(self);
        List<Sandbox> open = new ArrayList<>();
        try {
            for (int i = 0; i < count; i++) {
                open.add(sandbox(k));
                check(open.getLast().exec("true"), "an idle sandbox's exec");
            }
            Thread.sleep(SETTLE);
            long rss = BootBench.rssKb(self), pss = pssKb(self);
            return new Memory((rss - rss0) / 1024.0 / count, (pss - pss0) / 1024.0 / count);
        } finally {
            for (Sandbox s : open) {
                s.close();
            }
        }
    }

    /** Pss of a process, from smaps_rollup. */
    static long pssKb(Path proc) throws IOException {
        for (String line : Files.readAllLines(proc.resolve("smaps_rollup"))) {
            if (line.startsWith("Pss:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        throw new IOException("no Pss in " + proc.resolve("smaps_rollup"));
    }

    record QemuBoot(double readyS, Memory memory) {}

    /** QEMU's console output, watched for the ready line (the time it came) while keeping the text for errors. */
    static final class ReadyWatch extends OutputStream {
        private final long t0;
        private final StringBuilder text = new StringBuilder();
        private long ready = -1;

        ReadyWatch(long t0) {
            this.t0 = t0;
        }

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) {
            long now = System.nanoTime();
            if (text.length() < (1 << 20)) {
                text.append(new String(b, off, len, StandardCharsets.ISO_8859_1));
            }
            if (ready < 0 && text.indexOf(READY) >= 0) {
                ready = now - t0;
                notifyAll();
            }
        }

        /** Whether the ready line came within {@code limit}; gives up early once {@code p} has ended. */
        synchronized boolean awaitReady(Duration limit, Process p) throws InterruptedException {
            long deadline = System.nanoTime() + limit.toNanos();
            while (ready < 0 && System.nanoTime() < deadline && p.isAlive()) {
                wait(100);
            }
            return ready >= 0;
        }

        synchronized long readyNanos() {
            return ready;
        }

        synchronized String text() {
            return text.toString();
        }
    }

    /** QEMU's microvm to the agent's ready line: the time from its start and its memory then. */
    static QemuBoot qemu(Path qemu, Workspace.GuestKernel k, String cmdline, boolean vhostVsock) throws Exception {
        List<String> cmd = new ArrayList<>(BootBench.qemuMicrovm(qemu, MEM_MIB));
        cmd.addAll(List.of("-kernel", k.vmlinux().toString(), "-initrd", k.initramfs().toString(), "-append", cmdline));
        if (vhostVsock) {
            cmd.addAll(List.of("-device", "vhost-vsock-device,guest-cid=" + QEMU_CID));
        }
        long t0 = System.nanoTime();
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
        ReadyWatch w = new ReadyWatch(t0);
        Thread pump = Thread.ofPlatform().daemon().start(() -> {
            try (InputStream in = p.getInputStream()) {
                in.transferTo(w);
            } catch (IOException ignored) {
                // the process ended
            }
        });
        try {
            if (!w.awaitReady(LIMIT, p)) {
                throw new IllegalStateException("no " + READY + " line " + (p.isAlive() ? "within " + LIMIT : "before QEMU exited")
                        + Bench.lastLines(w.text()));
            }
            Path proc = Path.of("/proc/" + p.pid());
            Memory m = new Memory(BootBench.rssKb(proc) / 1024.0, pssKb(proc) / 1024.0);
            return new QemuBoot(w.readyNanos() / 1e9, m);
        } finally {
            ChildProcess.kill(p);
            pump.join(1000);
        }
    }

    private static OptionalDouble median(List<Double> values) {
        return values.isEmpty() ? OptionalDouble.empty()
                : OptionalDouble.of(Bench.median(values.stream().mapToDouble(Double::doubleValue).toArray()));
    }

    private static String cell(OptionalDouble v) {
        return v.isPresent() ? String.format("%.2f", v.getAsDouble()) : "-";
    }

    private static String row(String name, OptionalDouble k, OptionalDouble q, OptionalDouble ratio) {
        return String.format("%-26s %10s %10s %7s", name, cell(k), cell(q), cell(ratio));
    }

    private static OptionalDouble ratio(OptionalDouble k, OptionalDouble q) {
        return k.isPresent() && q.isPresent() ? OptionalDouble.of(k.getAsDouble() / q.getAsDouble()) : OptionalDouble.empty();
    }

    /** The table, its note and the summary line (ratio = kindling / qemu, below 1 is better for Kindling). */
    static List<String> table(Results r, Options o, String kernel) {
        OptionalDouble build = median(r.kindling().stream().map(Boot::agentS).toList());
        OptionalDouble first = median(r.kindling().stream().map(Boot::firstExecS).toList());
        OptionalDouble ready = median(r.qemuReadyS());
        OptionalDouble exec = median(r.execMillis());
        OptionalDouble cycle = median(r.cycleSeconds());
        OptionalDouble perMinute = cycle.isPresent() ? OptionalDouble.of(60 / cycle.getAsDouble()) : OptionalDouble.empty();
        OptionalDouble rss = OptionalDouble.of(r.kindlingMemory().rssMib()), pss = OptionalDouble.of(r.kindlingMemory().pssMib());
        OptionalDouble qRss = r.qemuMemory().map(m -> OptionalDouble.of(m.rssMib())).orElse(OptionalDouble.empty());
        OptionalDouble qPss = r.qemuMemory().map(m -> OptionalDouble.of(m.pssMib())).orElse(OptionalDouble.empty());
        List<String> lines = new ArrayList<>();
        lines.add(String.format("%-26s %10s %10s %7s", "metric (median)", "kindling", "qemu", "ratio"));
        lines.add(row("boot-to-agent-s", build, ready, ratio(build, ready)));
        lines.add(row("boot-to-first-exec-s", first, ready, ratio(first, ready)));
        lines.add(row("exec-true-rtt-ms", exec, OptionalDouble.empty(), OptionalDouble.empty()));
        lines.add(row("sandboxes-per-minute", perMinute, OptionalDouble.empty(), OptionalDouble.empty()));
        lines.add(row("idle-rss-mib", rss, qRss, ratio(rss, qRss)));
        lines.add(row("idle-pss-mib", pss, qPss, ratio(pss, qPss)));
        lines.add(String.format("(%d run(s) each, alternating, no warm-up; Kindling in this JVM: boot-to-agent is build() returning"
                        + " (the agent answered on vsock), boot-to-first-exec adds exec(\"true\"), %d exec(\"true\") round trips per run;"
                        + " sandboxes-per-minute extrapolated from %d sequential build/exec/close cycles; idle memory: this JVM's"
                        + " growth with %d idle sandboxes, per sandbox; QEMU -M microvm: its start to the %s console line, its process's"
                        + " RSS/PSS then; %s; %d MiB, 1 vCPU, %s; ratio = kindling / qemu, below 1 is better)",
                r.kindling().size(), o.execs(), r.cycleSeconds().size(), o.idle(), READY, r.qemuNote(), MEM_MIB, kernel));
        lines.add(String.format("sandbox: boot-ratio %s memory-ratio %s exec-ms %s per-minute %s",
                cell(ratio(build, ready)), cell(ratio(rss, qRss)), cell(exec), cell(perMinute)));
        return lines;
    }
}
