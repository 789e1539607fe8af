package dev.kindling.kvm.platform;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.irq.IrqLine;
import dev.kindling.irq.MsiVector;
import dev.kindling.kvm.RoutingEntry;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.Machine;
import dev.kindling.machine.StopReason;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The interrupt service on real KVM, seen by the {@code irq} guest's handler (vector 0x30). */
@Timeout(120)
class InterruptsOnKvmTest {
    private static final Duration WAIT = Duration.ofSeconds(60);
    /** How long a guest is watched for an interrupt it must not get. */
    private static final Duration QUIET_WINDOW = Duration.ofMillis(300);
    private static final KvmPlatform.Config SPLIT = new KvmPlatform.Config(IrqchipMode.SPLIT, false);
    private static final long LAPIC_MSI = 0xfee00000L;
    private static final int VECTOR = 0x30;

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

    private static StopReason run(Machine m) throws InterruptedException {
        m.start();
        return m.awaitExit(WAIT).orElseThrow(() -> new AssertionError(m.name() + " did not end within " + WAIT));
    }

    /** The guest's port 0x610 (ready) and 0x614 (count after each interrupt): each write asks for one more, three in all. */
    private Recorder raiseOnEachReport(Runnable raise) {
        AtomicInteger raised = new AtomicInteger();
        Runnable once = () -> {
            if (raised.incrementAndGet() <= 3) {
                raiser.execute(raise);
            }
        };
        return new Recorder("irq-source").onWrite(0, v -> once.run()).onWrite(4, v -> once.run());
    }

    @Test
    void splitIrqchipLineGoesThroughTheIrqfdWhileThePinIsUnmaskedAndEdgeTriggered() throws Exception {
        try (Machine m = TestGuests.machine("irq", 1, SPLIT, false)) {
            KvmPlatform p = (KvmPlatform) m.platform();
            List<String> modelCalls = Collections.synchronizedList(new ArrayList<>());
            IoapicLink link = p.connectIoapic(new IoapicModel() {
                @Override
                public void setPin(int pin, boolean level) {
                    modelCalls.add("pin " + pin + " " + level);
                }

                @Override
                public void endOfInterrupt(int vector) {
                    modelCalls.add("eoi " + vector);
                }
            });
            // what an IOAPIC model reports once the guest has programmed pin 10 (the guest's own
            // IOAPIC writes go nowhere here: no model is on the bus)
            link.pinChanged(10, LAPIC_MSI, VECTOR, false);
            IrqLine line = p.interrupts().line(10);
            Recorder dev = raiseOnEachReport(line::pulse);
            Recorder unexpected = new Recorder("unexpected-vector");
            m.attachPio(0x610, 8, dev);
            m.attachPio(0x6ff, 1, unexpected);
            assertThat(run(m)).isInstanceOf(StopReason.Reset.class);
            assertThat(unexpected.writes()).isEmpty();
            assertThat(dev.values(4)).containsExactly(1L, 2L, 3L);
            assertThat(modelCalls).as("edges that went to the model instead of KVM").isEmpty();
        }
    }

    @Test
    void splitIrqchipMaskedPinsKeepTheirRoutesSoKvmStillReportsTheirEoi() throws Exception {
        try (Machine m = TestGuests.machine("hello", 1, SPLIT, false)) {
            KvmPlatform p = (KvmPlatform) m.platform();
            GsiRouting routing = new GsiRouting(entries -> { }, List.of());
            SplitIrqchipInterrupts split = new SplitIrqchipInterrupts(p.vm(), routing, 24);
            int level = VECTOR | 1 << 15;
            split.pinChanged(9, LAPIC_MSI, level, true);
            assertThat(routing.route(9)).as("never unmasked: no route").isNull();
            split.pinChanged(9, LAPIC_MSI, level, false);
            RoutingEntry programmed = new RoutingEntry.Msi(9, LAPIC_MSI, level);
            assertThat(routing.route(9)).isEqualTo(programmed);
            split.pinChanged(9, LAPIC_MSI, level, true); // a handler's disable_irq while its interrupt is in service
            assertThat(routing.route(9)).as("KVM reports a level vector's EOI only for vectors of its routes")
                    .isEqualTo(programmed);
        }
    }

    @Test
    void splitIrqchipEdgesOnAMaskedPinGoToTheModel() throws Exception {
        try (Machine m = TestGuests.machine("hello", 1, SPLIT, false)) {
            KvmPlatform p = (KvmPlatform) m.platform();
            List<String> modelCalls = Collections.synchronizedList(new ArrayList<>());
            IoapicLink link = p.connectIoapic(new IoapicModel() {
                @Override
                public void setPin(int pin, boolean level) {
                    modelCalls.add(pin + "=" + level);
                }

                @Override
                public void endOfInterrupt(int vector) {}
            });
            IrqLine line = p.interrupts().line(7);
            line.pulse(); // not programmed yet
            link.pinChanged(7, LAPIC_MSI, VECTOR, false);
            link.pinChanged(7, LAPIC_MSI, VECTOR, true); // masked again
            line.pulse();
            link.pinChanged(7, LAPIC_MSI, VECTOR | 1 << 15, false); // level-triggered
            line.pulse();
            line.set(true);
            assertThat(modelCalls).containsExactly("7=true", "7=false", "7=true", "7=false", "7=true", "7=false", "7=true");
            assertThatThrownBy(() -> p.interrupts().line(24)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> p.connectIoapic(new IoapicModel() {
                public void setPin(int pin, boolean level) {}

                public void endOfInterrupt(int vector) {}
            })).isInstanceOf(IllegalStateException.class).hasMessageContaining("connected already");
        }
    }

    @Test
    void kernelIrqchipHasNoVmmIoapic() throws Exception {
        try (Machine m = TestGuests.machine("hello")) {
            assertThatThrownBy(() -> ((KvmPlatform) m.platform()).connectIoapic(null))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("split irqchip");
        }
    }

    @ParameterizedTest
    @EnumSource(IrqchipMode.class)
    void msiVectorIsHeldWhileMaskedAndDeliveredOnUnmask(IrqchipMode mode) throws Exception {
        try (Machine m = TestGuests.machine("irq", 1, new KvmPlatform.Config(mode, false), false)) {
            MsiVector vector = m.platform().interrupts().msiVector();
            assertThat(vector.masked()).as("a new vector").isTrue();
            vector.configure(LAPIC_MSI, VECTOR);
            CountDownLatch firstTriggered = new CountDownLatch(1);
            AtomicInteger raised = new AtomicInteger();
            Recorder dev = new Recorder("msi-source").onWrite(0, v -> raiser.execute(() -> {
                vector.trigger();
                firstTriggered.countDown();
            })).onWrite(4, v -> {
                if (raised.incrementAndGet() < 3) {
                    raiser.execute(() -> vector.irqfd().signal()); // what VFIO's producer does
                }
            });
            Recorder unexpected = new Recorder("unexpected-vector");
            m.attachPio(0x610, 8, dev);
            m.attachPio(0x6ff, 1, unexpected);
            m.start();
            assertThat(firstTriggered.await(WAIT.toSeconds(), TimeUnit.SECONDS)).isTrue();
            assertThat(vector.pending()).as("triggered while masked").isTrue();
            assertThat(dev.awaitWrites(2, QUIET_WINDOW)).as("the guest took an interrupt of a masked vector").isFalse();

            vector.setMasked(false);
            assertThat(m.awaitExit(WAIT)).containsInstanceOf(StopReason.Reset.class);
            assertThat(dev.values(4)).containsExactly(1L, 2L, 3L);
            assertThat(unexpected.writes()).isEmpty();
            assertThat(vector.pending()).isFalse();
            vector.close();
        }
    }

    @Test
    void closedVectorsGiveTheirGsiBack() throws Exception {
        try (Machine m = TestGuests.machine("hello", 1, SPLIT, false)) {
            var interrupts = m.platform().interrupts();
            KvmMsiVector a = (KvmMsiVector) interrupts.msiVector();
            KvmMsiVector b = (KvmMsiVector) interrupts.msiVector();
            assertThat(a.gsi()).isEqualTo(KvmPlatform.IOAPIC_PINS);
            assertThat(b.gsi()).isEqualTo(KvmPlatform.IOAPIC_PINS + 1);
            a.configure(LAPIC_MSI, VECTOR);
            a.setMasked(false);
            a.close();
            a.close();
            assertThatThrownBy(() -> a.setMasked(false)).isInstanceOf(IllegalStateException.class);
            KvmMsiVector c = (KvmMsiVector) interrupts.msiVector();
            assertThat(c.gsi()).isEqualTo(a.gsi());
            c.configure(LAPIC_MSI, VECTOR + 1);
            c.setMasked(false); // the GSI's route and irqfd are c's now: KVM accepts them again
            c.close();
            b.close();
        }
    }
}
