package dev.kindling.cli;

import dev.kindling.devices.ivshmem.IvshmemClient;
import dev.kindling.devices.ivshmem.IvshmemMemory;
import dev.kindling.devices.ivshmem.IvshmemServer;
import dev.kindling.microvm.Microvm;
import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

/**
 * {@code kindling bench ivshmem}: doorbell round trips between two VMs and between the host program
 * and a VM, and the guest's bandwidth to ivshmem's BAR2 next to its own RAM, for Kindling and for
 * QEMU (its {@code pc} machine with {@code ivshmem-doorbell}) on Kindling's ivshmem server, both
 * running the {@code ivshmem} guest (guests/ivshmem.c); then the host-guest round trip over vsock
 * ({@link VsockBench}: what a user would pick instead) in the same run. All timed on the host: the
 * guests' progress is in the shared memory, so QEMU's need no port of Kindling's.
 */
final class IvshmemBench {
    static final int MEM_MIB = 64;
    static final long SIZE = 4L << 20;
    static final Duration LIMIT = Duration.ofMinutes(5);
    static final int CTL_MAGIC = 0x6b696e64;
    static final String[] ROWS = {"vm-to-vm-rtt-us", "host-to-vm-rtt-us", "guest-ram-mib-s", "bar2-mib-s"};

    private IvshmemBench() {}

    record Options(int runs, int rounds, int kib, boolean vsock) {}

    /** One run of one VMM: round trips in microseconds (medians for the host's), bandwidths in MiB/s. */
    record Sample(double vmToVm, double hostToVm, double ramMibS, double bar2MibS) {
        double row(int i) {
            return switch (i) {
                case 0 -> vmToVm;
                case 1 -> hostToVm;
                case 2 -> ramMibS;
                default -> bar2MibS;
            };
        }
    }

    static Options options(List<String> argv) {
        Args a = new Args(argv, Set.of("runs", "rounds", "kib"), Set.of("no-vsock"));
        Options o = new Options(a.intValue("runs", 3), a.intValue("rounds", 200), a.intValue("kib", 256), !a.has("no-vsock"));
        if (o.runs() < 1) {
            throw new UsageException("--runs must be at least 1");
        }
        if (o.rounds() < 1 || o.rounds() > 100000) {
            throw new UsageException("--rounds must be between 1 and 100000");
        }
        if (o.kib() < 4 || o.kib() > 2048) {
            throw new UsageException("--kib must be between 4 and 2048 (the shared memory is " + (SIZE >> 20) + " MiB)");
        }
        if (!a.positional().isEmpty()) {
            throw new UsageException("bench ivshmem takes no arguments besides its options, got '" + a.positional().getFirst() + "'");
        }
        return o;
    }

    /** Starts one peer VM of the server at a socket; closing it ends the VM. */
    @FunctionalInterface
    interface Vmm {
        AutoCloseable start(Path socket) throws Exception;
    }

    static int run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Options o = options(argv);
        Path qemu = HostTool.QEMU.require(err);
        Workspace.buildGuests(err);
        Path guest = Workspace.guest("ivshmem.elf");
        Path dir = Files.createTempDirectory("kindling-bench-ivshmem-");
        try {
            Vmm kindling = socket -> {
                Microvm vm = Microvm.builder().name("bench-ivshmem").memoryMib(MEM_MIB).kernel(guest)
                        .ivshmemServer(socket).build();
                vm.start();
                return vm;
            };
            Vmm qemuPc = socket -> qemuPeer(qemu, guest, socket, dir);
            List<Sample> ks = new ArrayList<>(), qs = new ArrayList<>();
            for (int r = 1; r <= o.runs(); r++) {
                ks.add(sample(kindling, dir, o));
                err.printf("bench ivshmem: run %d kindling %s%n", r, describe(ks.getLast()));
                qs.add(sample(qemuPc, dir, o));
                err.printf("bench ivshmem: run %d qemu     %s%n", r, describe(qs.getLast()));
            }
            double[] vsock = o.vsock() ? vsockRtt(o, err) : null;
            table(ks, qs, vsock, o).forEach(out::println);
            return 0;
        } finally {
            try (var files = Files.list(dir)) {
                for (Path p : files.toList()) {
                    Files.deleteIfExists(p);
                }
            }
            Files.deleteIfExists(dir);
        }
    }

    private static String describe(Sample s) {
        return String.format("vm<->vm %.1f us, host<->vm %.1f us, RAM %.1f MiB/s, BAR2 %.1f MiB/s",
                s.vmToVm(), s.hostToVm(), s.ramMibS(), s.bar2MibS());
    }

    /** QEMU's pc machine with the guest as its PVH kernel and an ivshmem-doorbell on the server. */
    private static AutoCloseable qemuPeer(Path qemu, Path guest, Path socket, Path dir) throws IOException {
        Path log = Files.createTempFile(dir, "qemu-", ".log");
        Process p = new ProcessBuilder(qemu.toString(), "-M", "pc", "-accel", "kvm", "-m",
                String.valueOf(MEM_MIB), "-nodefaults", "-vga", "none", "-display", "none", "-no-reboot",
                "-kernel", guest.toString(), "-chardev", "socket,path=" + socket + ",id=ivshmem",
                "-device", "ivshmem-doorbell,chardev=ivshmem,vectors=1")
                .redirectErrorStream(true).redirectOutput(log.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
        return () -> ChildProcess.kill(p);
    }

    /** A fresh server for each exchange, so each starts from zeroed memory. */
    static Sample sample(Vmm vmm, Path dir, Options o) throws Exception {
        Path socket = dir.resolve("ivshmem.sock");
        double vmToVm;
        try (IvshmemServer server = IvshmemServer.start(socket, SIZE, 1);
             IvshmemClient host = IvshmemClient.connect(socket);
             IvshmemMemory shm = host.map();
             AutoCloseable a = vmm.start(socket);
             AutoCloseable b = vmm.start(socket)) {
            int[] ids = awaitGuests(server, host, shm.segment(), 2);
            long t0 = System.nanoTime();
            go(shm.segment(), ids[0], ids[1], o.rounds(), 0);
            awaitInt(shm.segment(), slot(ids[1]), o.rounds(), "the responder's last round");
            vmToVm = (System.nanoTime() - t0) / 1e3 / o.rounds();
        }
        try (IvshmemServer server = IvshmemServer.start(socket, SIZE, 1);
             IvshmemClient host = IvshmemClient.connect(socket);
             IvshmemMemory shm = host.map();
             AutoCloseable g = vmm.start(socket)) {
            MemorySegment m = shm.segment();
            int guest = awaitGuests(server, host, m, 1)[0];
            Semaphore rung = new Semaphore(0);
            double[] rtt = new double[o.rounds()];
            try (AutoCloseable handler = host.onInterrupt(0, rung::release)) {
                go(m, host.ownId(), guest, o.rounds(), o.kib());
                for (int r = 1; r <= o.rounds(); r++) {
                    long t0 = System.nanoTime();
                    m.set(ValueLayout.JAVA_INT, slot(host.ownId()), r);
                    VarHandle.releaseFence();
                    host.notify(guest, 0);
                    if (!rung.tryAcquire(LIMIT.toSeconds(), TimeUnit.SECONDS)) {
                        throw new IllegalStateException("the guest did not answer ring " + r);
                    }
                    rtt[r - 1] = (System.nanoTime() - t0) / 1e3;
                }
            }
            long phase = slot(guest) + 0x28;
            awaitInt(m, phase, 1, "the RAM pass");
            long t1 = System.nanoTime();
            awaitInt(m, phase, 2, "the BAR2 pass");
            long t2 = System.nanoTime();
            awaitInt(m, phase, 3, "the end of the BAR2 pass");
            long t3 = System.nanoTime();
            double mib = o.kib() / 1024.0;
            return new Sample(vmToVm, Bench.median(rtt), mib / ((t2 - t1) / 1e9), mib / ((t3 - t2) / 1e9));
        }
    }

    /** The guests' ids (the server's peers but the host), once each has MSI-X on (its ready word). */
    private static int[] awaitGuests(IvshmemServer server, IvshmemClient host, MemorySegment m, int count)
            throws InterruptedException {
        long deadline = System.nanoTime() + LIMIT.toNanos();
        int[] ids;
        do {
            ids = server.peers().stream().mapToInt(IvshmemServer.Peer::id).filter(i -> i != host.ownId()).sorted().toArray();
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(ids.length + " of " + count + " guests joined the server in " + LIMIT);
            }
            Thread.sleep(1);
        } while (ids.length < count);
        for (int id : ids) {
            if (id > 8) {
                throw new IllegalStateException("peer id " + id + " is beyond the guest's 8 slots");
            }
            awaitInt(m, slot(id) + 0x2c, 1, "guest " + id + " to be ready");
        }
        return ids;
    }

    private static long slot(int id) {
        return 0x100 + id * 0x100L;
    }

    /** The control block of guests/ivshmem.c, the magic last. */
    private static void go(MemorySegment m, int initiator, int responder, int rounds, int kib) {
        m.set(ValueLayout.JAVA_INT, 4, initiator);
        m.set(ValueLayout.JAVA_INT, 8, responder);
        m.set(ValueLayout.JAVA_INT, 12, rounds);
        m.set(ValueLayout.JAVA_INT, 80, kib);
        VarHandle.releaseFence();
        m.set(ValueLayout.JAVA_INT, 0, CTL_MAGIC);
    }

    /** Spins (the timing is the point) until the int at {@code offset} is at least {@code want}. */
    private static void awaitInt(MemorySegment m, long offset, int want, String what) {
        long deadline = System.nanoTime() + LIMIT.toNanos();
        while (true) {
            VarHandle.acquireFence();
            if (m.get(ValueLayout.JAVA_INT, offset) >= want) {
                return;
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("waited " + LIMIT + " for " + what);
            }
            Thread.onSpinWait();
        }
    }

    /** {@link VsockBench}'s host-guest round trip for Kindling (vsock) and QEMU (virtio-serial), once. */
    private static double[] vsockRtt(Options o, PrintStream err) throws Exception {
        VsockBench.Runs runs = VsockBench.measure(new VsockBench.Options(1, 64, Math.min(o.rounds(), 1000)), err);
        return new double[] {runs.kindling().getFirst().rttMicros(), runs.qemu().getFirst().rttMicros()};
    }

    static List<String> table(List<Sample> kindling, List<Sample> qemu, double[] vsock, Options o) {
        List<String> lines = new ArrayList<>();
        lines.add(String.format("%-22s %10s %10s %7s", "metric (median)", "kindling", "qemu", "ratio"));
        double[] ratio = new double[ROWS.length];
        double[] k = new double[ROWS.length];
        for (int i = 0; i < ROWS.length; i++) {
            int row = i;
            k[i] = Bench.median(kindling.stream().mapToDouble(s -> s.row(row)).toArray());
            double q = Bench.median(qemu.stream().mapToDouble(s -> s.row(row)).toArray());
            ratio[i] = i < 2 ? q / k[i] : k[i] / q;
            lines.add(String.format("%-22s %10.2f %10.2f %7.2f", ROWS[i], k[i], q, ratio[i]));
        }
        if (vsock != null) {
            lines.add(String.format("%-22s %10.2f %10.2f %7.2f", "vsock-rtt-us", vsock[0], vsock[1], vsock[1] / vsock[0]));
        }
        lines.add(String.format("(%d run(s) each, alternating; %d doorbell round trips each, MSI-X, one vector; %d KiB written"
                        + " and read back by 32-bit words in guest RAM, then in BAR2; the ivshmem guest (guests/ivshmem.c) in"
                        + " both, %d MiB, 1 vCPU; QEMU: -M pc, ivshmem-doorbell, on Kindling's server; vsock-rtt: the Linux"
                        + " test guest's 64-byte echoes (QEMU: over virtio-serial), for comparison; ratio above 1: Kindling"
                        + " better (qemu / kindling for round trips, kindling / qemu for MiB/s))",
                kindling.size(), o.rounds(), o.kib(), MEM_MIB));
        lines.add(String.format("ivshmem: vm-to-vm-rtt-ratio %.2f host-to-vm-rtt-ratio %.2f bar2-mib-s-ratio %.2f"
                        + " bar2-vs-ram %.2f%s", ratio[0], ratio[1], ratio[3], k[3] / k[2],
                vsock == null ? "" : String.format(" vsock-rtt-vs-doorbell %.2f", vsock[0] / k[1])));
        return lines;
    }
}
