package dev.kindling.cli;

import dev.kindling.device.Device;
import dev.kindling.kvm.Capability;
import dev.kindling.kvm.Kvm;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.machine.StopReason;
import dev.kindling.microvm.DeviceSpec;
import dev.kindling.microvm.Microvm;
import java.io.PrintStream;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * {@code kindling probe}: the KVM API version, each capability Kindling uses, the vCPU limits, and how
 * fast guest kernel-mode code runs (a tight loop in the {@code spin} guest, timed from the host).
 */
final class Probe {
    /** Below this, guest code is not running on the CPU but in KVM's instruction emulator. */
    static final double NATIVE_THRESHOLD = 100e6;

    private Probe() {}

    static int run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        if (!argv.isEmpty()) {
            throw new UsageException("probe takes no arguments");
        }
        try (Kvm kvm = Kvm.open()) {
            out.println("kvm-api-version: " + kvm.apiVersion());
            for (Capability c : Capability.values()) {
                out.println("capability " + c.macro() + ": " + (kvm.hasExtension(c) ? "present" : "absent"));
            }
            out.println("vcpus-recommended: " + kvm.recommendedVcpus());
            out.println("vcpus-max: " + kvm.maxVcpus());
        }
        Workspace.buildGuests(err);
        double ips = guestInstructionsPerSecond();
        out.printf("guest-instructions-per-second: %.0f%n", ips);
        out.println("guest-execution: " + (ips < NATIVE_THRESHOLD ? "emulated (KVM's instruction emulator)" : "native"));
        return 0;
    }

    /** Times N iterations of {@code dec ecx; jnz}, growing N until the loop takes at least 200 ms. */
    static double guestInstructionsPerSecond() throws InterruptedException {
        long iterations = 100_000;
        while (true) {
            double seconds = spin(iterations);
            if (seconds >= 0.2 || iterations >= 1L << 31) {
                return 2 * iterations / seconds;
            }
            iterations = Math.min(1L << 31, iterations * Math.max(2, (long) (0.3 / Math.max(seconds, 1e-6))));
        }
    }

    private static double spin(long iterations) throws InterruptedException {
        SpinPorts ports = new SpinPorts(iterations);
        try (Microvm vm = Microvm.builder().name("probe").memoryMib(16).irqchip(IrqchipMode.KERNEL).isaSerial(false)
                .kernel(Workspace.guest("spin.elf")).device(DeviceSpec.pio(0x710, 4, () -> ports)).build()) {
            vm.start();
            Optional<StopReason> why = vm.awaitExit(Duration.ofMinutes(5));
            if (why.isEmpty() || !why.get().isClean() || ports.end == 0) {
                throw new IllegalStateException("the spin guest did not finish: " + why.map(StopReason::describe).orElse("timeout"));
            }
            return (ports.end - ports.start) / 1e9;
        }
    }

    /** Port 0x710 gives the count; 0x712 takes 1 at the start of the loop and 2 at its end. */
    private static final class SpinPorts implements Device {
        private final long iterations;
        private volatile long start, end;

        SpinPorts(long iterations) {
            this.iterations = iterations;
        }

        public String name() {
            return "spin";
        }

        public long read(long offset, int size) {
            return offset == 0 ? iterations : 0;
        }

        public void write(long offset, int size, long value) {
            if (offset == 2 && value == 1) {
                start = System.nanoTime();
            } else if (offset == 2 && value == 2) {
                end = System.nanoTime();
            }
        }
    }
}
