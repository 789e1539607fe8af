package dev.kindling.sandbox;

import static dev.kindling.sandbox.TestSandboxes.progress;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.vfio.InProcessPlatformDevice;
import dev.kindling.devices.vfio.VfioPlatformOptions;
import dev.kindling.testing.Require;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HexFormat;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A VFIO-platform device in a Linux guest, one boot for all checks: the in-process platform device
 * stands where a host device bound to vfio-platform would, the test kernel finds it in the device
 * tree Kindling passes in setup_data (no driver parameter names its address or interrupt),
 * uio_pdrv_genirq binds it by its compatible, and {@code uio-peer} (the guest build's, copied in)
 * uses its mapped region, its trapped one and its level-triggered interrupt. Two vCPUs: the MP
 * table's IOAPIC must carry the id Linux gives the device tree's, or no ISA interrupt (serial,
 * virtio-mmio) would reach the guest.
 */
@Timeout(900)
class VfioPlatformLinuxTest {
    private static final long BASE = 0xb000_0000L;
    private static final int GSI = 20;
    private static final String COMPATIBLE = "kindling,in-process";
    private static final String SYSFS = "/sys/bus/platform/devices/b0000000.in-process";
    private static InProcessPlatformDevice device;
    private static Sandbox sandbox;

    @BeforeAll
    static void boot() {
        device = new InProcessPlatformDevice();
        long t0 = System.nanoTime();
        sandbox = TestSandboxes.builder("vfio-platform").vcpus(2)
                .vfioPlatform("in-process device", () -> device, BASE, GSI,
                        VfioPlatformOptions.defaults().withCompatible(COMPATIBLE, "generic-uio"))
                .kernelArgs("uio_pdrv_genirq.of_id=" + COMPATIBLE).build();
        progress(String.format("booted in %.0f s", (System.nanoTime() - t0) / 1e9));
        Path tool = GuestDir.locate().dir().resolve("uio-peer");
        Require.that(Files.isRegularFile(tool), "the guest dir has no uio-peer (an older build): " + GuestDir.BUILD_HINT);
        sandbox.put("/bin/uio-peer", tool, 0755);
    }

    @AfterAll
    static void close() {
        if (sandbox != null) {
            sandbox.close();
        }
        if (device != null) {
            assertThat(device.closed()).as("closing the sandbox closed the device").isTrue();
        }
    }

    private static String exec(String command) {
        ExecResult r = sandbox.exec(Duration.ofSeconds(60), "sh", "-c", command);
        assertThat(r.exitCode()).as("%s: %s%s", command, r.stdout(), r.stderr()).isZero();
        return r.stdout().strip();
    }

    @Test
    void linuxFindsTheDeviceInTheDeviceTreeAndBindsItsDriver() {
        assertThat(exec("tr '\\0' ' ' < /sys/firmware/devicetree/base/compatible")).isEqualTo("kindling,microvm");
        assertThat(exec("tr '\\0' ' ' < " + SYSFS + "/of_node/compatible")).isEqualTo(COMPATIBLE + " generic-uio");
        assertThat(exec("readlink " + SYSFS + "/driver")).endsWith("/uio_pdrv_genirq");
        assertThat(exec("uio-peer info")).isEqualTo("name=in-process map0=0x00000000b0000000+0x0000000000001000"
                + " map1=0x00000000b0001000+0x0000000000001000");
        assertThat(exec("od -An -tx1 /sys/firmware/devicetree/base/in-process@b0000000/interrupts").replaceAll("\\s+", ""))
                .as("GSI 20, level-triggered").isEqualTo("0000001400000001");
        assertThat(exec("cat /proc/interrupts")).as("the device's interrupt, level-triggered on its IOAPIC pin")
                .containsPattern("IO-APIC\\s+" + GSI + "-fasteoi\\s+in-process");
    }

    @Test
    void theMappedRegionIsTheDevicesMemoryAndTheRegistersTrap() {
        long trapped = device.trappedRegion0();
        byte[] fromHost = "written by the host".getBytes(StandardCharsets.US_ASCII);
        device.memory().asSlice(0x100, fromHost.length).copyFrom(MemorySegment.ofArray(fromHost));
        assertThat(exec("uio-peer read 0 0x100 " + fromHost.length)).isEqualTo(HexFormat.of().formatHex(fromHost));
        byte[] fromGuest = "and by the guest".getBytes(StandardCharsets.US_ASCII);
        exec("uio-peer write 0 0x200 " + HexFormat.of().formatHex(fromGuest));
        assertThat(device.memory().asSlice(0x200, fromGuest.length).toArray(ValueLayout.JAVA_BYTE)).isEqualTo(fromGuest);
        assertThat(device.trappedRegion0()).as("region 0 is mapped: no access of the guest's traps").isEqualTo(trapped);
        assertThat(exec("uio-peer r32 1 0")).as("region 1, trapped: the ID register")
                .isEqualTo(String.format("0x%08x", InProcessPlatformDevice.ID));
    }

    @Test
    void eachLevelInterruptReachesTheDriverAndEndsWithTheGuestsAcknowledgement() {
        int n = 5;
        int fired = device.fired();
        int unmasks = device.unmasks();
        ExecResult r = sandbox.exec(Duration.ofSeconds(60), "uio-peer", "irq", "1", String.valueOf(InProcessPlatformDevice.RAISE),
                String.valueOf(InProcessPlatformDevice.ACK), String.valueOf(n), "20000");
        String out = r.stdout().strip();
        progress(out);
        assertThat(r.exitCode()).as(() -> String.format("%s %s; the host line fired %d times and was unmasked %d times; %s",
                out, r.stderr(), device.fired() - fired, device.unmasks() - unmasks, exec("grep in-process /proc/interrupts")))
                .isZero();
        assertThat(out).startsWith("interrupts=" + n + " count=");
        assertThat(Integer.parseInt(out.substring(out.indexOf("count=") + 6))).isGreaterThanOrEqualTo(n);
        assertThat(exec("uio-peer r32 1 " + InProcessPlatformDevice.COUNT)).as("the device saw every acknowledgement")
                .isEqualTo(String.format("0x%08x", n));
        assertThat(device.fired() - fired).as("the host line fired once per assertion at least").isGreaterThanOrEqualTo(n);
        // The line the last acknowledgement ended may still be raised at the masked pin (the host
        // re-fired it on the EOI before the guest acknowledged; the next EOI's resample lowers it), so
        // one enable may see a stale interrupt. After it nothing asserts: the wait times out.
        sandbox.exec(Duration.ofSeconds(60), "uio-peer", "irq", "1", "0x100", "0x104", "1", "500");
        assertThat(sandbox.exec(Duration.ofSeconds(60), "uio-peer", "irq", "1", "0x100", "0x104", "1", "500").exitCode())
                .as("no interrupt without an assertion: the wait times out").isEqualTo(1);
    }
}
