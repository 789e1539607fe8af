package dev.kindling.examples;

import dev.kindling.devices.ivshmem.IvshmemClient;
import dev.kindling.devices.ivshmem.IvshmemMemory;
import dev.kindling.devices.ivshmem.IvshmemServer;
import dev.kindling.sandbox.Exec;
import dev.kindling.sandbox.ExecHandle;
import dev.kindling.sandbox.ExecResult;
import dev.kindling.sandbox.Sandbox;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HexFormat;
import java.util.OptionalInt;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

/**
 * Two VMs and this program share memory over ivshmem. An ivshmem server (QEMU's protocol, one
 * interrupt vector per peer) hands one shared memory to three peers: this program
 * ({@link IvshmemClient}) and two sandboxes, each with an ivshmem-doorbell PCI device on its legacy
 * interrupt line. In the guests, {@code ivshmem-peer} (built with the guest, copied in) maps the
 * device's BARs through sysfs. VM a writes a line and rings VM b's doorbell; VM b, waiting for that
 * interrupt, reads the line, writes an answer and rings this program, which reads both.
 * {@code ./kindling example shared-memory} runs it.
 *
 * <p>Usage: {@code SharedMemory GUEST_DIR}, the output directory of {@code scripts/build-guest-kernel.sh}.
 */
public final class SharedMemory {
    public static final String FROM_A = "hello from vm a", FROM_B = "hello back from vm b";
    static final long SIZE = 1 << 20, ANSWER_AT = 4096;
    private static final Duration BOOT = Duration.ofMinutes(10), STEP = Duration.ofSeconds(60);

    private SharedMemory() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: SharedMemory GUEST_DIR   (GUEST_DIR=$(scripts/build-guest-kernel.sh | tail -1))");
            System.exit(64);
        }
        run(Path.of(args[0]), System.out);
    }

    public static void run(Path guestDir, PrintStream out) throws IOException, InterruptedException {
        Path tool = guestDir.resolve("ivshmem-peer");
        if (!Files.isRegularFile(tool)) {
            throw new IllegalStateException(guestDir + " has no ivshmem-peer (an older guest build): "
                    + "rebuild it with scripts/build-guest-kernel.sh");
        }
        Path work = Files.createTempDirectory("kindling-shared-memory-");
        Path socket = work.resolve("ivshmem.sock");
        try (IvshmemServer server = IvshmemServer.start(socket, SIZE, 1);
                IvshmemClient host = IvshmemClient.connect(socket);
                IvshmemMemory shared = host.map()) {
            out.printf("ivshmem server %s: %d KiB shared, %d vector per peer%n", socket, SIZE >> 10, server.vectors());
            Sandbox[] vms = bootBoth(guestDir, socket);
            try (Sandbox a = vms[0]; Sandbox b = vms[1]) {
                for (Sandbox vm : vms) {
                    vm.put("/bin/ivshmem-peer", tool, 0755);
                }
                int idA = peerId(a), idB = peerId(b);
                out.printf("peers: vm a %d, vm b %d, this program %d%n", idA, idB, host.ownId());

                ExecHandle waiting = b.start(Exec.of("ivshmem-peer", "wait-status", String.valueOf(STEP.toMillis())));
                sh(a, "ivshmem-peer write 0 " + hex(FROM_A) + " && ivshmem-peer ring " + idB + " 0");
                out.printf("vm a wrote \"%s\" and rang vm b%n", FROM_A);
                OptionalInt waited = waiting.waitFor(STEP);
                String status = new String(waiting.stdout().readAllBytes(), StandardCharsets.US_ASCII).strip();
                if (waited.orElse(-1) != 0) {
                    throw new IllegalStateException("vm b saw no doorbell within " + STEP + ": " + status);
                }
                String read = text(sh(b, "ivshmem-peer read 0 " + FROM_A.length()));
                out.printf("vm b was interrupted (%s) and read \"%s\"%n", status, read);

                Semaphore rung = new Semaphore(0);
                host.onInterrupt(0, rung::release); // removed when host closes
                sh(b, "ivshmem-peer write " + ANSWER_AT + " " + hex(FROM_B) + " && ivshmem-peer ring " + host.ownId() + " 0");
                out.printf("vm b wrote \"%s\" and rang this program%n", FROM_B);
                if (!rung.tryAcquire(STEP.toMillis(), TimeUnit.MILLISECONDS)) {
                    throw new IllegalStateException("this program saw no doorbell from vm b within " + STEP);
                }
                out.printf("this program was interrupted and read \"%s\" and \"%s\"%n",
                        string(shared.segment(), 0, FROM_A.length()), string(shared.segment(), ANSWER_AT, FROM_B.length()));
            }
        } finally {
            Files.deleteIfExists(socket);
            Files.deleteIfExists(work);
        }
    }

    /** Boots both sandboxes at once; if either fails, the other is closed before the failure is thrown. */
    private static Sandbox[] bootBoth(Path guestDir, Path socket) {
        CompletableFuture<Sandbox> b = CompletableFuture.supplyAsync(() -> boot(guestDir, socket, "b"),
                task -> Thread.ofPlatform().name("shared-memory-boot-b").start(task));
        Sandbox a;
        try {
            a = boot(guestDir, socket, "a");
        } catch (RuntimeException | Error e) {
            try {
                b.join().close();
            } catch (CompletionException ignored) {
                // b failed too; a's failure is the one reported
            }
            throw e;
        }
        try {
            return new Sandbox[] {a, b.join()};
        } catch (CompletionException e) {
            a.close();
            throw e.getCause() instanceof RuntimeException r ? r : e;
        }
    }

    private static Sandbox boot(Path guestDir, Path socket, String name) {
        return Sandbox.builder().name("shared-memory-" + name).memoryMib(128)
                .kernel(guestDir.resolve("vmlinux")).initrd(guestDir.resolve("initramfs.cpio"))
                .ivshmemServer(socket, false) // legacy INTx: ivshmem-peer polls INTRSTATUS, which MSI-X leaves alone
                .bootTimeout(BOOT).build();
    }

    /** The guest's ivshmem peer id, from its IVPOSITION register. */
    private static int peerId(Sandbox vm) {
        String info = sh(vm, "ivshmem-peer info");
        return Integer.parseInt(info.replaceAll(".*ivposition=(-?\\d+).*", "$1"));
    }

    private static String sh(Sandbox vm, String command) {
        ExecResult r = vm.exec(STEP, "sh", "-c", command);
        if (r.exitCode() != 0) {
            throw new IllegalStateException("'" + command + "' exited with " + r.exitCode() + ": " + r.stderr().strip());
        }
        return r.stdout().strip();
    }

    private static String hex(String s) {
        return HexFormat.of().formatHex(s.getBytes(StandardCharsets.US_ASCII));
    }

    private static String text(String hex) {
        return new String(HexFormat.of().parseHex(hex), StandardCharsets.US_ASCII);
    }

    private static String string(MemorySegment memory, long offset, int length) {
        return new String(memory.asSlice(offset, length).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.US_ASCII);
    }
}
