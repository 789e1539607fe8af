package dev.kindling.cli;

import dev.kindling.device.Device;
import dev.kindling.kvm.Vcpu;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.kvm.platform.KvmPlatform;
import dev.kindling.machine.StopReason;
import dev.kindling.microvm.Microvm;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * {@code kindling bench exits}: the round trip of a port I/O exit and of an MMIO exit handled by a
 * Java device, next to {@code guests/out/kvm-exit-bench} (the same KVM_RUN loop in C, no Java) on the
 * same {@code exitloop} guest, alternating runs. Definitions, the same on both sides (timestamps taken
 * when the exit reaches the handler): {@code mmio} = PIO exit i to MMIO exit i; {@code pio} = MMIO
 * exit i-1 to PIO exit i; {@code roundtrip} = (last MMIO exit - first PIO exit) / (2N - 1).
 *
 * <p>{@code user} is the part of a round trip spent in user space, from KVM_RUN returning to the
 * next KVM_RUN: the same span minus the time inside KVM_RUN, which both loops take with
 * CLOCK_MONOTONIC just before and just after each ioctl ({@link Vcpu#measureRunTime(boolean)} on the
 * Java side), divided by the 2N - 1 runs in it. Both sides read the clock three times per exit (twice
 * around the ioctl, once in the handler), so the measuring costs the same in both.
 */
final class ExitBench {
    private static final long MMIO_ADDRESS = 0xd0001000L;

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
        Process p = new ProcessBuilder(Workspace.guest("kvm-exit-bench").toString(),
                Workspace.guest("exitloop.elf").toString(), Integer.toString(n)).redirectErrorStream(true).start();
        String text = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) {
            throw new IOException("kvm-exit-bench failed: " + text);
        }
        Map<String, Double> v = new HashMap<>();
        for (String line : text.lines().toList()) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 2) {
                v.put(f[0], Double.parseDouble(f[1]));
            }
        }
        return new Result(v.get("pio_ns"), v.get("mmio_ns"), v.get("pio_mmio_roundtrip_ns"), v.get("user_ns"));
    }

    static Result runJava(int n) throws InterruptedException {
        long[] pio = new long[n];
        long[] mmio = new long[n];
        // time inside KVM_RUN when PIO exit 0 and MMIO exit n-1 reached their devices
        long[] runTime = new long[2];
        Vcpu[] vcpu = new Vcpu[1];
        Device ports = new Device() {
            public String name() {
                return "exitloop-pio";
            }

            public long read(long offset, int size) {
                return offset == 0x10 ? n : 0;
            }

            public void write(long offset, int size, long value) {
                if (offset == 0 && value < n) {
                    pio[(int) value] = System.nanoTime();
                    if (value == 0) {
                        runTime[0] = vcpu[0].runTimeNanos();
                    }
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
                if (value < n) {
                    mmio[(int) value] = System.nanoTime();
                    if (value == n - 1) {
                        runTime[1] = vcpu[0].runTimeNanos();
                    }
                }
            }
        };
        try (Microvm vm = Microvm.builder().name("bench-exits").memoryMib(64).irqchip(IrqchipMode.KERNEL)
                .isaSerial(false).kernel(Workspace.guest("exitloop.elf"))
                .pioDevice(0x700, 0x14, -1, line -> ports).mmioDevice(MMIO_ADDRESS, 4, -1, line -> window).build()) {
            vcpu[0] = ((KvmPlatform) vm.machine().platform()).vm().vcpus().getFirst();
            vcpu[0].measureRunTime(true);
            vm.start();
            Optional<StopReason> why = vm.awaitExit(Duration.ofMinutes(10));
            if (why.isEmpty() || !why.get().isClean()) {
                throw new IllegalStateException("exitloop did not finish: " + why.map(StopReason::describe).orElse("timeout"));
            }
        }
        double pioSum = 0, mmioSum = 0;
        for (int i = 0; i < n; i++) {
            mmioSum += mmio[i] - pio[i];
            if (i > 0) {
                pioSum += pio[i] - mmio[i - 1];
            }
        }
        long span = mmio[n - 1] - pio[0];
        return new Result(pioSum / (n - 1), mmioSum / n, span / (2.0 * n - 1),
                (span - (runTime[1] - runTime[0])) / (2.0 * n - 1));
    }
}
