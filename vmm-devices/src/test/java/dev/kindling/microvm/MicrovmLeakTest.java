package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.StopReason;
import dev.kindling.testing.HostResources;
import java.io.ByteArrayInputStream;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Microvms with every legacy device (and their threads) leave nothing behind when closed. */
class MicrovmLeakTest {
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
        HostResources before = HostResources.now();
        for (int i = 0; i < 200; i++) {
            cycle(i);
        }
        HostResources.now().assertNothingLeftSince(before);
    }
}
