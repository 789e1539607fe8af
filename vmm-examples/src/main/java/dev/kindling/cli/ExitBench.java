package dev.kindling.cli;

import dev.kindling.device.Device;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.machine.StopReason;
import dev.kindling.microvm.DeviceSpec;
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
 */
final class ExitBench {
    private static final long MMIO_ADDRESS = 0xd0001000L;

    private ExitBench() {}

    record Result(double pioNs, double mmioNs, double roundtripNs) {}

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
        double[][] c = new double[3][runs];
        double[][] j = new double[3][runs];
        for (int r = 0; r < runs; r++) {
            store(c, r, runC(n));
            store(j, r, runJava(n));
        }
        String[] rows = {"pio", "mmio", "roundtrip"};
        out.printf("%-10s %12s %12s %7s%n", "exit", "c-ns", "java-ns", "ratio");
        double ratio = 0;
        for (int i = 0; i < rows.length; i++) {
            double cm = Bench.median(c[i]), jm = Bench.median(j[i]);
            out.printf("%-10s %12.0f %12.0f %7.2f%n", rows[i], cm, jm, jm / cm);
            ratio = jm / cm;
        }
        out.printf("(median of %d alternating runs of %d iterations each)%n", runs, n);
        out.printf("exit-overhead-ratio: %.2f%n", ratio);
        return 0;
    }

    private static void store(double[][] into, int run, Result r) {
        into[0][run] = r.pioNs();
        into[1][run] = r.mmioNs();
        into[2][run] = r.roundtripNs();
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
        return new Result(v.get("pio_ns"), v.get("mmio_ns"), v.get("pio_mmio_roundtrip_ns"));
    }

    static Result runJava(int n) throws InterruptedException {
        long[] pio = new long[n];
        long[] mmio = new long[n];
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
                }
            }
        };
        try (Microvm vm = Microvm.builder().name("bench-exits").memoryMib(64).irqchip(IrqchipMode.KERNEL)
                .isaSerial(false).kernel(Workspace.guest("exitloop.elf"))
                .device(DeviceSpec.pio(0x700, 0x14, () -> ports)).device(DeviceSpec.mmio(MMIO_ADDRESS, 4, () -> window)).build()) {
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
        return new Result(pioSum / (n - 1), mmioSum / n, (mmio[n - 1] - pio[0]) / (2.0 * n - 1));
    }
}
