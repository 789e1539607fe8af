package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.StopReason;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Microvms with every legacy device (and their threads) leave nothing behind when closed. */
class MicrovmLeakTest {
    private static long count(String dir) throws IOException {
        try (Stream<Path> s = Files.list(Path.of(dir))) {
            return s.count();
        }
    }

    private static long maps() throws IOException {
        try (Stream<String> s = Files.lines(Path.of("/proc/self/maps"))) {
            return s.count();
        }
    }

    private static void cycle(int i) throws Exception {
        try (Microvm vm = Microvm.builder().memoryMib(16).vcpus(1 + i % 2)
                .irqchip(i % 3 == 0 ? IrqchipMode.KERNEL : IrqchipMode.SPLIT)
                .rtc(OnOffAuto.ON).kernel(TestGuests.elf("hello"))
                .serialInput(new ByteArrayInputStream("input".getBytes())).build()) {
            vm.start();
            assertThat(vm.awaitExit(Duration.ofSeconds(30))).containsInstanceOf(StopReason.Reset.class);
        }
    }

    @Test
    @Timeout(600)
    void twoHundredMicrovmsLeaveNoDescriptorMappingOrThread() throws Exception {
        TestGuests.assumeKvm();
        cycle(0);
        cycle(1);
        long fds = count("/proc/self/fd"), tasks = count("/proc/self/task"), mappings = maps();
        for (int i = 0; i < 200; i++) {
            cycle(i);
        }
        assertThat(count("/proc/self/fd")).as("descriptors").isEqualTo(fds);
        assertThat(count("/proc/self/task")).as("threads").isEqualTo(tasks);
        assertThat(maps()).as("mappings").isBetween(mappings - 8, mappings + 8);
    }
}
