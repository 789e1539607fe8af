package dev.kindling.kvm.platform;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.Machine;
import dev.kindling.machine.StopReason;
import dev.kindling.testing.HostResources;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Creating, running and closing many machines leaves no descriptor, mapping or thread behind. */
class MachineLeakTest {
    private static final int CYCLES = 200;

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
        HostResources before = HostResources.now();
        for (int i = 0; i < CYCLES; i++) {
            cycle(1 + i % 2);
        }
        HostResources.now().assertNothingLeftSince(before);
    }
}
