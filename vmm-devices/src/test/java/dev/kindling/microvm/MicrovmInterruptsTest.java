package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.device.Device;
import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.irq.MsiVector;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.StopReason;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.LongConsumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The platform's interrupt service in a whole microvm (on the split irqchip with Kindling's IOAPIC
 * and PIC, and on KVM's irqchip), seen by the {@code irq} and {@code irqlevel} guests' handlers.
 */
@Timeout(120)
class MicrovmInterruptsTest {
    private static final Duration WAIT = Duration.ofSeconds(60);
    private static final int GSI = 10;

    /** Devices raise interrupts from threads of their own, never the vCPU's. */
    private final ExecutorService raiser = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "irq-raiser");
        t.setDaemon(true);
        return t;
    });

    @AfterEach
    void stopRaiser() throws InterruptedException {
        raiser.shutdownNow();
        assertThat(raiser.awaitTermination(10, TimeUnit.SECONDS)).isTrue();
    }

    /** Ports 0x610 (ready) and 0x614 (the handler's count): records the counts, calls back on each write. */
    private static final class GuestPorts implements Device {
        private final List<Long> counts = new ArrayList<>();
        private volatile LongConsumer onReady = v -> {};
        private volatile LongConsumer onCount = v -> {};

        public String name() {
            return "irq-guest-ports";
        }

        public long read(long offset, int size) {
            return 0;
        }

        public void write(long offset, int size, long value) {
            if (offset == 0) {
                onReady.accept(value);
            } else if (offset == 4) {
                synchronized (this) {
                    counts.add(value);
                }
                onCount.accept(value);
            }
        }

        synchronized List<Long> counts() {
            return List.copyOf(counts);
        }
    }

    private static final class Unexpected implements Device {
        final AtomicInteger writes = new AtomicInteger();

        public String name() {
            return "unexpected-vector";
        }

        public long read(long offset, int size) {
            return 0;
        }

        public void write(long offset, int size, long value) {
            writes.incrementAndGet();
        }
    }

    private static Microvm build(String guest, IrqchipMode mode, GuestPorts ports, Unexpected unexpected) {
        return Microvm.builder().memoryMib(64).irqchip(mode).kernel(TestGuests.elf(guest))
                .device(DeviceSpec.pio(0x610, 8, () -> ports))
                .device(DeviceSpec.pio(0x6ff, 1, () -> unexpected))
                .build();
    }

    private static void runToEnd(Microvm vm) throws InterruptedException {
        vm.start();
        assertThat(vm.awaitExit(WAIT)).contains(new StopReason.Reset(StopReason.ResetCause.I8042));
    }

    @ParameterizedTest
    @EnumSource(IrqchipMode.class)
    void aLinePulsedFromAJavaThreadReachesTheGuestsHandler(IrqchipMode mode) throws Exception {
        TestGuests.assumeKvm();
        GuestPorts ports = new GuestPorts();
        Unexpected unexpected = new Unexpected();
        try (Microvm vm = build("irq", mode, ports, unexpected)) {
            IrqLine line = vm.machine().platform().interrupts().line(GSI);
            ports.onReady = v -> raiser.execute(line::pulse);
            ports.onCount = v -> {
                if (v < 3) {
                    raiser.execute(line::pulse);
                }
            };
            runToEnd(vm);
        }
        assertThat(ports.counts()).containsExactly(1L, 2L, 3L);
        assertThat(unexpected.writes).hasValue(0);
    }

    @ParameterizedTest
    @EnumSource(IrqchipMode.class)
    void endOfInterruptListenersOfALevelTriggeredPinRunAndMayRaiseItAgain(IrqchipMode mode) throws Exception {
        TestGuests.assumeKvm();
        GuestPorts ports = new GuestPorts();
        Unexpected unexpected = new Unexpected();
        AtomicInteger eois = new AtomicInteger();
        try (Microvm vm = build("irqlevel", mode, ports, unexpected)) {
            InterruptService interrupts = vm.machine().platform().interrupts();
            IrqLine line = interrupts.line(GSI);
            AtomicInteger asserted = new AtomicInteger();
            ports.onReady = v -> raiser.execute(() -> {
                asserted.incrementAndGet();
                line.set(true);
            });
            ports.onCount = v -> line.set(false); // the handler's acknowledgement quietens the device
            try (AutoCloseable listener = interrupts.onEndOfInterrupt(GSI, () -> {
                eois.incrementAndGet();
                if (asserted.get() < 3) {
                    asserted.incrementAndGet();
                    line.set(true); // the device has more to say: no lock held here, so it may
                }
            })) {
                runToEnd(vm);
            }
        }
        assertThat(ports.counts()).containsExactly(1L, 2L, 3L);
        assertThat(unexpected.writes).hasValue(0);
        // the guest leaves right after its third interrupt: that EOI's listener may not have run yet
        assertThat(eois.get()).isBetween(2, 3);
    }

    @ParameterizedTest
    @EnumSource(IrqchipMode.class)
    void msiRoutesSurviveTheGuestProgrammingTheIoapic(IrqchipMode mode) throws Exception {
        TestGuests.assumeKvm();
        GuestPorts ports = new GuestPorts();
        Unexpected unexpected = new Unexpected();
        try (Microvm vm = build("irq", mode, ports, unexpected)) {
            InterruptService interrupts = vm.machine().platform().interrupts();
            // routed before the guest programs its IOAPIC pin, which commits a new routing table
            MsiVector vector = interrupts.msiVector();
            vector.configure(0xfee00000L, 0x30);
            vector.setMasked(false);
            IrqLine line = interrupts.line(GSI);
            ports.onReady = v -> raiser.execute(vector::trigger);
            ports.onCount = v -> {
                if (v == 1) {
                    raiser.execute(line::pulse);
                } else if (v == 2) {
                    raiser.execute(vector::trigger);
                }
            };
            runToEnd(vm);
            vector.close();
        }
        assertThat(ports.counts()).containsExactly(1L, 2L, 3L);
        assertThat(unexpected.writes).hasValue(0);
    }
}
