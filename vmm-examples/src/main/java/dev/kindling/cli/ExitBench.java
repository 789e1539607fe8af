package dev.kindling.cli;

import dev.kindling.device.Device;
import dev.kindling.kvm.Vcpu;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.kvm.platform.KvmPlatform;
import dev.kindling.machine.StopReason;
import dev.kindling.microvm.DeviceSpec;
import dev.kindling.microvm.Microvm;
import java.io.IOException;
import java.io.PrintStream;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * {@code kindling bench exits}: the round trip of a port I/O exit and of an MMIO exit handled by a
 * Java device, next to {@code guests/out/kvm-exit-bench} (the same KVM_RUN loop in C, no Java) on the
 * same {@code exitloop} guest, alternating runs. Both loops read CLOCK_MONOTONIC just before and
 * just after each KVM_RUN ({@link Vcpu#measureRunTime(boolean)} on the Java side) and nowhere else, so
 * the measuring costs the same in both; an exit's time is when KVM_RUN returned with it. Definitions,
 * the same on both sides: {@code mmio} = PIO exit i to MMIO exit i; {@code pio} = MMIO exit i-1 to
 * PIO exit i; {@code roundtrip} = (last MMIO exit - first PIO exit) / (2N - 1); {@code user} = the
 * part of a round trip spent in user space, from KVM_RUN returning to the next KVM_RUN: that span
 * minus the time inside KVM_RUN, over the 2N - 1 runs in it.
 */
final class ExitBench {
    private static final long MMIO_ADDRESS = 0xd0001000L;
    /** Far more than the C runner takes for any iteration count worth measuring; only a hang reaches it. */
    private static final Duration C_RUN_LIMIT = Duration.ofMinutes(10);

    private ExitBench() {}

    record Result(double pioNs, double mmioNs, double roundtripNs, double userNs) {}

    static int run(List<String> argv, PrintStream out) throws Exception {
        Args a = new Args(argv, Set.of("iterations", "runs"), Set.of());
        int n = a.intValue("iterations", 20_000);
        int runs = a.intValue("runs", 5);
        if (n < 2 || runs < 1) {
            throw new UsageException("--iterations must be at least 2 and --runs at least 1");
        }
        // one warm-up run each (JIT, page cache), not counted
        runC(n);
        runJava(n);
        double[][] c = new double[4][runs];
        double[][] j = new double[4][runs];
        for (int r = 0; r < runs; r++) {
            store(c, r, runC(n));
            store(j, r, runJava(n));
        }
        String[] rows = {"pio", "mmio", "roundtrip", "user"};
        out.printf("%-10s %12s %12s %7s%n", "exit", "c-ns", "java-ns", "ratio");
        double[] cm = new double[rows.length], jm = new double[rows.length];
        for (int i = 0; i < rows.length; i++) {
            cm[i] = Bench.median(c[i]);
            jm[i] = Bench.median(j[i]);
            out.printf("%-10s %12.0f %12.0f %7.2f%n", rows[i], cm[i], jm[i], jm[i] / cm[i]);
        }
        out.printf("(median of %d alternating runs of %d iterations each; user: per exit, from KVM_RUN returning"
                + " to the next KVM_RUN)%n", runs, n);
        out.printf("java-user-ns-per-exit: %.0f c-user-ns-per-exit: %.0f%n", jm[3], cm[3]);
        out.printf("exit-overhead-ratio: %.2f%n", jm[2] / cm[2]);
        return 0;
    }

    private static void store(double[][] into, int run, Result r) {
        into[0][run] = r.pioNs();
        into[1][run] = r.mmioNs();
        into[2][run] = r.roundtripNs();
        into[3][run] = r.userNs();
    }

    static Result runC(int n) throws IOException, InterruptedException {
        ChildProcess.Result r = ChildProcess.run(C_RUN_LIMIT, List.of(Workspace.guest("kvm-exit-bench").toString(),
                Workspace.guest("exitloop.elf").toString(), Integer.toString(n)));
        if (r.exitStatus() != 0) {
            throw new ChildProcess.Failure("kvm-exit-bench failed (exit status " + r.exitStatus() + "): "
                    + Workspace.firstError(r.lines()));
        }
        Map<String, Double> v = new HashMap<>();
        for (String line : r.lines()) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 2) {
                v.put(f[0], Double.parseDouble(f[1]));
            }
        }
        return new Result(v.get("pio_ns"), v.get("mmio_ns"), v.get("pio_mmio_roundtrip_ns"), v.get("user_ns"));
    }

    static Result runJava(int n) throws InterruptedException {
        Timeline timeline = new Timeline(n);
        Device ports = new Device() {
            public String name() {
                return "exitloop-pio";
            }

            public long read(long offset, int size) {
                return offset == 0x10 ? n : 0;
            }

            public void write(long offset, int size, long value) {
                if (offset == 0) {
                    timeline.pio(value);
                }
            }
        };
        Device window = new Device() {
            public String name() {
                return "exitloop-mmio";
            }

            public long read(long offset, int size) {
                return 0;
            }

            public void write(long offset, int size, long value) {
                timeline.mmio(value);
            }
        };
        try (Microvm vm = Microvm.builder().name("bench-exits").memoryMib(64).irqchip(IrqchipMode.KERNEL)
                .isaSerial(false).kernel(Workspace.guest("exitloop.elf"))
                .device(DeviceSpec.pio(0x700, 0x14, () -> ports)).device(DeviceSpec.mmio(MMIO_ADDRESS, 4, () -> window)).build()) {
            timeline.vcpu = ((KvmPlatform) vm.machine().platform()).vm().vcpus().getFirst();
            timeline.vcpu.measureRunTime(true);
            vm.start();
            Optional<StopReason> why = vm.awaitExit(Duration.ofMinutes(10));
            if (why.isEmpty() || !why.get().isClean()) {
                throw new IllegalStateException("exitloop did not finish: " + why.map(StopReason::describe).orElse("timeout"));
            }
        }
        return timeline.result();
    }

    /**
     * What the Java devices record as the exits reach them, kept as the C loop keeps it: running sums
     * in one small object (an array of timestamps would cost the Java side memory traffic the C side
     * does not have). Touched only by the vCPU thread until the machine has ended.
     */
    private static final class Timeline {
        private final int n;
        Vcpu vcpu;
        private int pioCount, mmioCount;
        private boolean outOfOrder;
        private long firstPio, lastPio, lastMmio, pioSum, mmioSum, runAtFirstPio, runAtLastMmio;

        Timeline(int n) {
            this.n = n;
        }

        void pio(long value) {
            long t = vcpu.lastRunEndNanos();
            outOfOrder |= value != pioCount || pioCount != mmioCount;
            if (pioCount == 0) {
                firstPio = t;
                runAtFirstPio = vcpu.runTimeNanos();
            } else {
                pioSum += t - lastMmio;
            }
            lastPio = t;
            pioCount++;
        }

        void mmio(long value) {
            long t = vcpu.lastRunEndNanos();
            outOfOrder |= value != mmioCount || mmioCount + 1 != pioCount;
            mmioSum += t - lastPio;
            lastMmio = t;
            if (++mmioCount == n) {
                runAtLastMmio = vcpu.runTimeNanos();
            }
        }

        Result result() {
            if (outOfOrder || pioCount != n || mmioCount != n) {
                throw new IllegalStateException("exitloop made " + pioCount + " PIO and " + mmioCount
                        + " MMIO exits (expected " + n + " each, alternating)" + (outOfOrder ? ", out of order" : ""));
            }
            long span = lastMmio - firstPio;
            return new Result(pioSum / (n - 1.0), mmioSum / (double) n, span / (2.0 * n - 1),
                    (span - (runAtLastMmio - runAtFirstPio)) / (2.0 * n - 1));
        }
    }
}
