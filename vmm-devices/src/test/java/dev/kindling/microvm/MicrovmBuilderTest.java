package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.boot.BootException;
import dev.kindling.device.Device;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.kvm.testing.TestGuests;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Impossible configurations fail with their own clear error, and leave nothing behind. */
class MicrovmBuilderTest {
    @TempDir
    Path tmp;

    private static long openFds() throws IOException {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    private static long threads() throws IOException {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/task"))) {
            return s.count();
        }
    }

    private MicrovmBuilder valid() {
        return Microvm.builder().memoryMib(64).kernel(TestGuests.elf("hello"));
    }

    @Test
    void missingOrUnreadableFilesAreNamed() {
        assertThatThrownBy(() -> Microvm.builder().build()).isInstanceOf(ConfigException.class).hasMessageContaining("no kernel");
        assertThatThrownBy(() -> Microvm.builder().kernel(tmp.resolve("nope")).build())
                .isInstanceOf(ConfigException.class).hasMessageContaining("kernel").hasMessageContaining("nope")
                .hasMessageContaining("does not exist");
        TestGuests.assumeKvm();
        assertThatThrownBy(() -> valid().initrd(tmp.resolve("initrd-missing")).build())
                .isInstanceOf(ConfigException.class).hasMessageContaining("initrd");
    }

    @Test
    void badKernelImagesGetAClearErrorBeforeTheVmExists() throws Exception {
        TestGuests.assumeKvm();
        Path garbage = tmp.resolve("garbage.bin");
        Files.write(garbage, new byte[4096]);
        assertThatThrownBy(() -> Microvm.builder().kernel(garbage).build())
                .isInstanceOf(ConfigException.class).hasMessageContaining("garbage.bin").hasCauseInstanceOf(BootException.class);
        byte[] elf = Files.readAllBytes(TestGuests.elf("hello"));
        Path truncated = tmp.resolve("truncated.elf");
        Files.write(truncated, Arrays.copyOf(elf, 100));
        assertThatThrownBy(() -> Microvm.builder().kernel(truncated).build())
                .isInstanceOf(ConfigException.class).hasMessageContaining("truncated.elf");
        Path bigInitrd = tmp.resolve("big-initrd");
        Files.write(bigInitrd, new byte[3 << 20]);
        assertThatThrownBy(() -> valid().memoryMib(4).initrd(bigInitrd).build())
                .isInstanceOf(ConfigException.class).hasMessageContaining("initrd");
    }

    @Test
    void impossibleMachinesAreRefused() {
        TestGuests.assumeKvm();
        assertThatThrownBy(() -> valid().memoryMib(0).build()).hasMessageContaining("at least 1 MiB");
        assertThatThrownBy(() -> valid().memoryMib(1L << 40).build()).hasMessageContaining("more than this host has");
        assertThatThrownBy(() -> valid().vcpus(0).build()).hasMessageContaining("at least 1");
        assertThatThrownBy(() -> valid().vcpus(100_000).build()).hasMessageContaining("above the limit");
        assertThatThrownBy(() -> valid().irqchip(IrqchipMode.KERNEL).pic(OnOffAuto.OFF).build())
                .hasMessageContaining("pic=off needs irqchip(SPLIT)");
    }

    @Test
    void irqConflictsNameBothClaimants() {
        TestGuests.assumeKvm();
        assertThatThrownBy(() -> valid().rtc(OnOffAuto.ON).pioDevice(0x700, 4, 8, line -> null).build())
                .isInstanceOf(ConfigException.class).hasMessage("IRQ 8 is wanted by both rtc and device at 0x700");
        MicrovmBuilder b = valid().rtc(OnOffAuto.ON);
        for (int i = 0; i < 4; i++) {
            b.virtioMmioTransport(line -> null);
        }
        assertThatThrownBy(b::build).hasMessage("IRQ 8 is wanted by both rtc and virtio-mmio transport 3");
    }

    @Test
    void aFailureMidwayLeavesNothingBehind() throws Exception {
        TestGuests.assumeKvm();
        // warm up lazily created JVM and test resources
        assertThatThrownBy(() -> valid().pioDevice(0x3f8, 1, -1, line -> new Probe()).build())
                .hasMessageContaining("overlaps");
        long fds = openFds(), tasks = threads();
        for (int i = 0; i < 20; i++) {
            // the user's device collides with the serial port: found only after the VM and devices exist
            assertThatThrownBy(() -> valid().pioDevice(0x3f8, 1, -1, line -> new Probe()).build())
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("overlaps");
        }
        assertThat(openFds()).isEqualTo(fds);
        assertThat(threads()).isEqualTo(tasks);
    }

    static final class Probe implements Device {
        public String name() {
            return "probe";
        }

        public long read(long offset, int size) {
            return 0;
        }

        public void write(long offset, int size, long value) {}
    }

    @Test
    void ioMapShowsExactlyWhatTheGuestCanReach() {
        TestGuests.assumeKvm();
        try (Microvm vm = valid().build()) {
            List<String> map = vm.ioMap().stream().map(IoMapEntry::toString).toList();
            assertThat(map).contains(
                    "pio  0x0020-0x0021 pic-master (kindling)",
                    "pio  0x0040-0x0043 pit (kindling)",
                    "pio  0x0060-0x0060 i8042-data (kindling)",
                    "pio  0x0064-0x0064 i8042-cmd (kindling)",
                    "pio  0x03f8-0x03ff serial0 (kindling)",
                    "mmio 0xfec00000-0xfec00fff ioapic (kindling)",
                    "mmio 0xfee00000-0xfee00fff local-apic (kvm)");
            assertThat(map).noneMatch(s -> s.contains("rtc"));
        }
        try (Microvm vm = valid().pic(OnOffAuto.OFF).pit(OnOffAuto.OFF).isaSerial(false).rtc(OnOffAuto.ON).build()) {
            List<String> names = vm.ioMap().stream().map(IoMapEntry::device).toList();
            assertThat(names).containsExactlyInAnyOrder("i8042-data", "rtc", "i8042-cmd", "ioapic", "local-apic");
        }
        try (Microvm vm = valid().irqchip(IrqchipMode.KERNEL).build()) {
            assertThat(vm.ioMap().stream().filter(e -> e.owner() == IoMapEntry.Owner.KVM).map(IoMapEntry::device))
                    .contains("pic-master", "pic-slave", "elcr", "ioapic", "pit", "local-apic");
        }
    }

    @Test
    void autoKernelCmdlineAddsOneEntryPerTransport() {
        TestGuests.assumeKvm();
        try (Microvm vm = valid().cmdline("console=ttyS0").virtioMmioTransport(line -> new Probe())
                .virtioMmioTransport(line -> new Probe()).build()) {
            assertThat(vm.cmdline()).isEqualTo(
                    "console=ttyS0 virtio_mmio.device=512@0xd0000000:5 virtio_mmio.device=512@0xd0000200:6");
            assertThat(vm.ioMap()).extracting(IoMapEntry::toString)
                    .contains("mmio 0xd0000000-0xd00001ff probe (kindling)", "mmio 0xd0000200-0xd00003ff probe (kindling)");
        }
        try (Microvm vm = valid().cmdline("console=ttyS0").autoKernelCmdline(false)
                .virtioMmioTransport(line -> new Probe()).build()) {
            assertThat(vm.cmdline()).isEqualTo("console=ttyS0");
        }
    }
}
