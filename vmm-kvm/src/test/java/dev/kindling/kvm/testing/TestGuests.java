package dev.kindling.kvm.testing;

import dev.kindling.boot.CmdLine;
import dev.kindling.boot.DirectBoot;
import dev.kindling.boot.MicrovmLayout;
import dev.kindling.device.Device;
import dev.kindling.kvm.Capability;
import dev.kindling.kvm.Kvm;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.kvm.platform.KvmPlatform;
import dev.kindling.machine.Machine;
import dev.kindling.machine.StopReason;
import dev.kindling.memory.GuestMemory;
import dev.kindling.sys.SyscallException;
import dev.kindling.testing.BoundedProcess;
import dev.kindling.testing.Require;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * The freestanding guests in {@code guests/}, built with gcc by {@code make} on first use, and
 * machines that boot them on real KVM. Tests skip (with the reason) where gcc, make or /dev/kvm is
 * missing.
 */
public final class TestGuests {
    public static final long RAM = 64L << 20;
    /** A build from clean takes about 1.5 s here; the limit only catches a hang. */
    private static final Duration BUILD_LIMIT = Duration.ofSeconds(300);
    /** KVM's PIC and IOAPIC: the guests' interrupts come through {@code platform().irqLine(gsi)}. */
    public static final KvmPlatform.Config KERNEL_IRQCHIP = new KvmPlatform.Config(IrqchipMode.KERNEL, false);
    private static boolean built;

    private TestGuests() {}

    public static Path root() {
        String root = System.getProperty("kindling.root", System.getenv("KINDLING_ROOT"));
        Require.that(root != null, "kindling.root is not set: run the tests through Maven from the repository");
        return Path.of(root);
    }

    /** Builds (if needed) and returns {@code guests/out/<name>.elf}. */
    public static synchronized Path elf(String name) {
        Path guests = root().resolve("guests");
        Require.that(Require.onPath("gcc") && Require.onPath("make") && Require.onPath("ld"),
                "gcc, make and ld are needed to build the test guests (apt-get install gcc make binutils)");
        if (built) {
            return guests.resolve("out").resolve(name + ".elf");
        }
        try {
            BoundedProcess.Result make = BoundedProcess.run(BUILD_LIMIT, "make", "-s", "-C", guests.toString());
            if (!make.succeeded()) {
                throw new IllegalStateException("building the test guests failed: " + make.describe() + "\n" + make.output());
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot run make for the test guests", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
        built = true;
        return guests.resolve("out").resolve(name + ".elf");
    }

    /**
     * Skips the test (fails it in strict mode, see {@link Require}) with the reason when /dev/kvm cannot
     * be used or lacks a capability Kindling's machines need (irqfd, ioeventfd, immediate_exit, the
     * split irqchip).
     */
    public static void assumeKvm() {
        Path kvm = Path.of("/dev/kvm");
        Require.that(Files.isReadable(kvm) && Files.isWritable(kvm), "/dev/kvm is missing or not accessible");
        try (Kvm k = openKvm()) {
            for (Capability c : List.of(Capability.IRQFD, Capability.IOEVENTFD, Capability.IMMEDIATE_EXIT,
                    Capability.SPLIT_IRQCHIP)) {
                Require.that(k.hasExtension(c), "/dev/kvm lacks " + c.macro());
            }
        }
    }

    private static Kvm openKvm() {
        try {
            return Kvm.open();
        } catch (SyscallException | UnsupportedOperationException e) {
            return Require.unavailable("KVM is not usable here: " + e.getMessage(), e);
        }
    }

    /**
     * A machine with 64 MiB of RAM and {@code vcpus} vCPUs with guest {@code name} loaded (PVH or the
     * 64-bit entry), the boot vCPU set to its entry, and a reset port at 0x64 (0xFE ends the machine
     * as a reset, like the i8042).
     */
    public static Machine machine(String name, int vcpus, KvmPlatform.Config config, boolean strictMmio) throws IOException {
        assumeKvm();
        byte[] image = Files.readAllBytes(elf(name));
        KvmPlatform platform = KvmPlatform.create(config);
        GuestMemory memory;
        try {
            memory = MicrovmLayout.anonymousMemory(RAM);
        } catch (RuntimeException e) {
            platform.close();
            throw e;
        }
        Machine m = new Machine(name, platform, memory, vcpus, strictMmio);
        try {
            DirectBoot.Result boot = DirectBoot.boot(memory, image, null, new CmdLine(), vcpus);
            m.vcpus().getFirst().setBootState(boot.bsp());
            m.attachPio(0x64, 1, new ResetPort(m));
            return m;
        } catch (RuntimeException e) {
            m.close();
            throw e;
        }
    }

    public static Machine machine(String name) throws IOException {
        return machine(name, 1, KERNEL_IRQCHIP, false);
    }

    /** Port 0x64: a write of 0xFE resets (ends) the machine, as the i8042 does. */
    record ResetPort(Machine machine) implements Device {
        public String name() {
            return "reset-port";
        }

        public long read(long offset, int size) {
            return 0;
        }

        public void write(long offset, int size, long value) {
            if ((value & 0xff) == 0xfe) {
                machine.requestExit(new StopReason.Reset(StopReason.ResetCause.I8042));
            }
        }
    }
}
