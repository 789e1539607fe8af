package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.device.Device;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.StopReason;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** A freestanding PVH guest reads the start info MicrovmBuilder built and exits through the i8042. */
class MicrovmPvhTest {
    @TempDir
    Path tmp;

    /** Port 0x660 collects 32-bit words, 0x664 the command line bytes. */
    static final class StartInfoPorts implements Device {
        final List<Long> words = new ArrayList<>();
        final ByteArrayOutputStream cmdline = new ByteArrayOutputStream();

        public String name() {
            return "start-info-report";
        }

        public long read(long offset, int size) {
            return 0;
        }

        public synchronized void write(long offset, int size, long value) {
            if (offset == 0) {
                words.add(value);
            } else if (offset == 4) {
                cmdline.write((int) value);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(IrqchipMode.class)
    void guestSeesStartInfoMemoryMapCommandLineAndInitrd(IrqchipMode mode) throws Exception {
        TestGuests.assumeKvm();
        Path initrd = tmp.resolve("initrd");
        Files.write(initrd, new byte[] {'I', 'N', 'I', 'T', 1, 2, 3});
        StartInfoPorts ports = new StartInfoPorts();
        try (Microvm vm = Microvm.builder().memoryMib(64).irqchip(mode).kernel(TestGuests.elf("pvhinfo"))
                .initrd(initrd).cmdline("console=ttyS0 kindling.test=pvh")
                .device(DeviceSpec.pio(0x660, 8, () -> ports)).build()) {
            vm.start();
            assertThat(vm.awaitExit(Duration.ofSeconds(60))).contains(new StopReason.Reset(StopReason.ResetCause.I8042));
        }
        List<Long> w = ports.words;
        assertThat(w.get(0)).as("magic").isEqualTo(0x336ec578L);
        assertThat(w.get(1)).as("version").isEqualTo(1L);
        assertThat(w.get(2)).as("nr_modules").isEqualTo(1L);
        assertThat(w.get(3)).as("memmap_entries").isEqualTo(3L);
        // addr lo, addr hi, size lo, size hi, type: RAM below the EBDA, the reserved EBDA/BIOS area, RAM from 1 MiB
        assertThat(w.subList(4, 19)).containsExactly(
                0L, 0L, 0x9fc00L, 0L, 1L,
                0x9fc00L, 0L, 0x100000L - 0x9fc00L, 0L, 2L,
                0x100000L, 0L, (64L << 20) - 0x100000L, 0L, 1L);
        assertThat(w.get(19)).as("module size").isEqualTo(7L);
        assertThat(w.get(20)).as("module bytes").isEqualTo(0x54494e49L); // "INIT", little-endian
        assertThat(ports.cmdline.toString()).isEqualTo("console=ttyS0 kindling.test=pvh");
    }
}
