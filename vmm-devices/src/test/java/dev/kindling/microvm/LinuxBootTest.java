package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.machine.StopReason;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Boots the Linux test kernel to its busybox init in the variants users pick most (legacy devices on
 * and off, one and two vCPUs, PVH and bzImage); the init reports what the guest sees (RAM, CPUs,
 * command line, PIC, RTC), then reboots (i8042 0xFE).
 * Guest kernel code may run under KVM's instruction emulator here, so a boot takes tens of seconds.
 */
@Timeout(900)
class LinuxBootTest {
    private static final Duration BOOT = Duration.ofMinutes(6);
    private static final int MEM_MIB = 64;

    private static Map<String, String> boot(MicrovmBuilder b, TestKernel k) throws Exception {
        try (Microvm vm = b.memoryMib(MEM_MIB).initrd(k.initramfs()).cmdline(k.testCmdline()).build()) {
            vm.start();
            StopReason why = vm.awaitExit(BOOT).orElseThrow(
                    () -> new AssertionError("no exit within " + BOOT + "; console:\n" + vm.console().text()));
            String console = vm.console().text();
            assertThat(why).as("exit; console:\n" + console).isEqualTo(new StopReason.Reset(StopReason.ResetCause.I8042));
            Map<String, String> m = TestKernel.markers(console);
            assertThat(m).as("console:\n" + console).containsKey("INIT-OK");
            // awaitExit returned only once the console had everything: the last line init wrote, and
            // the kernel's own last words before the reset
            assertThat(m).as("console:\n" + console).containsKey("UPTIME");
            assertThat(console).contains("reboot: Restarting system");
            long memKb = Long.parseLong(m.get("MEM"));
            assertThat(memKb).as("MemTotal kB").isBetween(MEM_MIB * 1024L * 6 / 10, MEM_MIB * 1024L);
            assertThat(m.get("CMDLINE")).isEqualTo(vm.cmdline());
            return m;
        }
    }

    @Test
    void oneVcpuWithPicPitAndRtcOn() throws Exception {
        TestKernel k = TestKernel.locate();
        Map<String, String> m = boot(Microvm.builder().kernel(k.vmlinux()).vcpus(1)
                .pic(OnOffAuto.ON).pit(OnOffAuto.ON).rtc(OnOffAuto.ON), k);
        assertThat(m.get("CPUS")).isEqualTo("1");
        assertThat(m.get("PIC")).isEqualTo("yes");
        assertThat(m.get("RTC")).isEqualTo("yes");
    }

    @Test
    void twoVcpusWithPicPitAndRtcOff() throws Exception {
        TestKernel k = TestKernel.locate();
        Map<String, String> m = boot(Microvm.builder().kernel(k.vmlinux()).vcpus(2)
                .pic(OnOffAuto.OFF).pit(OnOffAuto.OFF).rtc(OnOffAuto.OFF), k);
        assertThat(m.get("CPUS")).isEqualTo("2");
        assertThat(m.get("PIC")).isEqualTo("no");
        assertThat(m.get("RTC")).isEqualTo("no");
    }

    @Test
    void bzImageOnKvmsIrqchip() throws Exception {
        TestKernel k = TestKernel.locate();
        Path bz = k.bzImage();
        Map<String, String> m = boot(Microvm.builder().kernel(bz).irqchip(IrqchipMode.KERNEL).vcpus(1), k);
        assertThat(m.get("CPUS")).isEqualTo("1");
        assertThat(m.get("PIC")).isEqualTo("yes");
    }
}
