package dev.kindling.kvm.platform;

import dev.kindling.kvm.testing.TestGuests;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.machine.Machine;
import dev.kindling.machine.StopReason;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Creating, running and closing many machines leaves no descriptor, mapping or thread behind. */
class MachineLeakTest {
    private static final int CYCLES = 200;

    private static long count(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.count();
        }
    }

    private static long maps() throws IOException {
        try (Stream<String> s = Files.lines(Path.of("/proc/self/maps"))) {
            return s.count();
        }
    }

    private static void cycle(int vcpus) throws Exception {
        try (Machine m = TestGuests.machine("exitloop", vcpus, TestGuests.KERNEL_IRQCHIP, false)) {
            m.attachPio(0x700, 0x20, new Recorder("exitloop")); // 0x710 reads 0: no iterations
            m.start();
            assertThat(m.awaitExit(Duration.ofSeconds(30))).containsInstanceOf(StopReason.Reset.class);
        }
    }

    @Test
    @Timeout(600)
    void twoHundredMachinesLeaveNothingBehind() throws Exception {
        cycle(2); // warm up: classes, JIT, per-thread buffers
        long fds = count(Path.of("/proc/self/fd"));
        long tasks = count(Path.of("/proc/self/task"));
        long mappings = maps();
        for (int i = 0; i < CYCLES; i++) {
            cycle(1 + i % 2);
        }
        assertThat(count(Path.of("/proc/self/fd"))).as("open descriptors").isEqualTo(fds);
        assertThat(count(Path.of("/proc/self/task"))).as("threads").isEqualTo(tasks);
        // malloc arenas may add a mapping or two on their own; a leaked guest RAM or run page adds one per VM
        assertThat(maps()).as("mappings").isBetween(mappings - 8, mappings + 8);
    }
}
