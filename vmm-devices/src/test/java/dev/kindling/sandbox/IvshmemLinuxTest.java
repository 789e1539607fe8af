package dev.kindling.sandbox;

import static dev.kindling.sandbox.TestSandboxes.progress;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.ivshmem.IvshmemClient;
import dev.kindling.devices.ivshmem.IvshmemMemory;
import dev.kindling.devices.ivshmem.IvshmemServer;
import dev.kindling.testing.Require;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HexFormat;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * ivshmem in a Linux guest, one boot for all checks: the test kernel (PCI and MSI on) finds an
 * ivshmem-plain device (slot 1) and an ivshmem-doorbell one on legacy INTx (slot 2, a peer of a
 * server the test runs) without ACPI, and {@code ivshmem-peer} (the guest build's, copied in) maps their BARs
 * through sysfs.
 */
@Timeout(900)
class IvshmemLinuxTest {
    private static final long PLAIN_SIZE = 1 << 20, SERVED_SIZE = 1 << 16;
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static Path work;
    private static IvshmemMemory plain;
    private static IvshmemServer server;
    private static IvshmemClient host;
    private static IvshmemMemory served;
    private static Sandbox sandbox;

    @BeforeAll
    static void boot() throws Exception {
        work = Files.createTempDirectory("kindling-ivshmem-test-");
        plain = IvshmemMemory.create("ivshmem-linux-test", PLAIN_SIZE);
        Path socket = work.resolve("ivshmem.sock");
        server = IvshmemServer.start(socket, SERVED_SIZE, 1);
        host = IvshmemClient.connect(socket);
        served = host.map();
        long t0 = System.nanoTime();
        sandbox = TestSandboxes.builder("ivshmem").ivshmem(plain).ivshmemServer(socket, false).build();
        progress(String.format("booted in %.0f s", (System.nanoTime() - t0) / 1e9));
        Path tool = GuestDir.locate().dir().resolve("ivshmem-peer");
        Require.that(Files.isRegularFile(tool), "the guest dir has no ivshmem-peer (an older build): " + GuestDir.BUILD_HINT);
        sandbox.put("/bin/ivshmem-peer", tool, 0755);
    }

    @AfterAll
    static void close() throws Exception {
        for (AutoCloseable c : new AutoCloseable[] {sandbox, served, host, server, plain}) {
            if (c != null) {
                c.close();
            }
        }
        if (work != null) {
            Files.deleteIfExists(work.resolve("ivshmem.sock"));
            Files.deleteIfExists(work);
        }
    }

    private static String exec(String command) {
        ExecResult r = sandbox.exec(Duration.ofSeconds(60), "sh", "-c", command);
        assertThat(r.exitCode()).as("%s: %s", command, r.stderr()).isZero();
        return r.stdout().strip();
    }

    @Test
    void linuxListsBothDevicesWithTheirIdsAndBarSizes() {
        assertThat(exec("cat /sys/bus/pci/devices/0000:00:00.0/vendor /sys/bus/pci/devices/0000:00:00.0/class"))
                .as("the host bridge").isEqualTo("0x1b36\n0x060000");
        for (String bdf : new String[] {"0000:00:01.0", "0000:00:02.0"}) {
            String dir = "/sys/bus/pci/devices/" + bdf;
            assertThat(exec("cat " + dir + "/vendor " + dir + "/device " + dir + "/class"))
                    .isEqualTo("0x1af4\n0x1110\n0x050000");
        }
        assertThat(exec("stat -c %s /sys/bus/pci/devices/0000:00:01.0/resource2")).isEqualTo(String.valueOf(PLAIN_SIZE));
        assertThat(exec("stat -c %s /sys/bus/pci/devices/0000:00:02.0/resource2")).isEqualTo(String.valueOf(SERVED_SIZE));
        // Linux routes a function's INTx when a driver enables it (pcibios_enable_irq), as sysfs enable does.
        assertThat(exec("echo 1 > /sys/bus/pci/devices/0000:00:02.0/enable; cat /sys/bus/pci/devices/0000:00:02.0/irq"))
                .as("INTA# of slot 2, from the MP table")
                .isEqualTo(String.valueOf(16 + 2 % 4));
    }

    @Test
    void theGuestAndTheHostExchangeDataThroughBar2() {
        byte[] fromHost = "written by the host program".getBytes(StandardCharsets.US_ASCII);
        plain.segment().asSlice(4096, fromHost.length).copyFrom(java.lang.foreign.MemorySegment.ofArray(fromHost));
        String info = exec("ivshmem-peer info");
        assertThat(info).contains("vendor=0x1af4 device=0x1110 size=" + PLAIN_SIZE);
        assertThat(exec("ivshmem-peer read 4096 " + fromHost.length)).isEqualTo(HexFormat.of().formatHex(fromHost));

        byte[] fromGuest = "and this by the guest".getBytes(StandardCharsets.US_ASCII);
        exec("ivshmem-peer write 0x2000 " + HexFormat.of().formatHex(fromGuest));
        byte[] seen = plain.segment().asSlice(0x2000, fromGuest.length).toArray(ValueLayout.JAVA_BYTE);
        assertThat(new String(seen, StandardCharsets.US_ASCII)).isEqualTo("and this by the guest");
    }

    @Test
    void doorbellsOnLegacyInterruptsReachTheHostAndTheGuest() throws Exception {
        String bdf = "0000:00:02.0";
        int guest = Integer.parseInt(exec("ivshmem-peer -d " + bdf + " info").replaceAll(".*ivposition=(-?\\d+).*", "$1"));
        assertThat(guest).as("the guest's peer id").isNotEqualTo(host.ownId()).isBetween(0, 0xffff);

        Semaphore rung = new Semaphore(0);
        try (AutoCloseable handler = host.onInterrupt(0, rung::release)) {
            exec("ivshmem-peer -d " + bdf + " ring " + host.ownId() + " 0");
            assertThat(rung.tryAcquire(WAIT.toSeconds(), TimeUnit.SECONDS)).as("the guest's ring reached the host").isTrue();
        }
        ExecHandle waiting = sandbox.start(Exec.of("ivshmem-peer", "-d", bdf, "wait-status", "20000"));
        Thread.sleep(500); // let it poll first: INTRSTATUS is set by the ring and cleared by the read
        host.notify(guest, 0);
        assertThat(waiting.waitFor(WAIT)).hasValue(0);
        assertThat(new String(waiting.stdout().readAllBytes(), StandardCharsets.US_ASCII).strip()).isEqualTo("status=1");

        served.segment().set(ValueLayout.JAVA_INT, 0x100, 0x5eed);
        assertThat(exec("ivshmem-peer -d " + bdf + " read 0x100 4")).isEqualTo("ed5e0000");
    }
}
