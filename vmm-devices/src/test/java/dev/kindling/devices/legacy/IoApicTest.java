package dev.kindling.devices.legacy;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(10)
class IoApicTest {
    record Msi(long address, int data) {}

    record Route(int pin, long address, int data, boolean masked) {}

    private final List<Msi> sent = new ArrayList<>();
    private final List<Route> routes = new ArrayList<>();
    private final IoApic ioapic = new IoApic("ioapic", 0, new MsiSink() {
        @Override
        public void deliver(long address, int data) {
            synchronized (sent) {
                sent.add(new Msi(address, data));
                sent.notifyAll();
            }
        }

        @Override
        public void routeChanged(int pin, long address, int data, boolean masked) {
            routes.add(new Route(pin, address, data, masked));
        }
    });

    @AfterEach
    void close() {
        ioapic.close();
    }

    private int readReg(int reg) {
        ioapic.write(0x00, 4, reg);
        return (int) ioapic.read(0x10, 4);
    }

    private void writeReg(int reg, int value) {
        ioapic.write(0x00, 4, reg);
        ioapic.write(0x10, 4, value & 0xffffffffL);
    }

    private void program(int pin, long entry) {
        writeReg(0x11 + 2 * pin, (int) (entry >>> 32));
        writeReg(0x10 + 2 * pin, (int) entry);
    }

    private int sentCount() {
        synchronized (sent) {
            return sent.size();
        }
    }

    @Test
    void identificationRegisters() {
        assertThat(readReg(0x01)).isEqualTo(0x00170020);
        assertThat(readReg(0x00)).isZero();
        writeReg(0x00, 0x0a000000);
        assertThat(readReg(0x00)).isEqualTo(0x0a000000);
        assertThat(readReg(0x02)).isEqualTo(0x0a000000);
        writeReg(0x01, 0); // read-only
        assertThat(readReg(0x01)).isEqualTo(0x00170020);
        ioapic.write(0x00, 4, 0x01);
        assertThat(ioapic.read(0x00, 4)).isEqualTo(0x01);
        assertThat(readReg(0x40)).isZero(); // beyond the table: reserved
    }

    @Test
    void allPinsStartMasked() {
        for (int pin = 0; pin < IoApic.PINS; pin++) {
            assertThat(readReg(0x10 + 2 * pin)).isEqualTo(0x00010000);
            assertThat(readReg(0x11 + 2 * pin)).isZero();
        }
        ioapic.line(4).pulse();
        ioapic.line(9).set(true);
        assertThat(sent).isEmpty();
    }

    @Test
    void edgePinSendsItsMessage() {
        program(4, 0x01000000_00000024L); // dest 1, physical, fixed, edge, vector 0x24
        // high dword first (still masked), then the low one
        assertThat(routes).containsExactly(new Route(4, 0xfee01000L, 0, true), new Route(4, 0xfee01000L, 0x24, false));
        ioapic.line(4).pulse();
        assertThat(sent).containsExactly(new Msi(0xfee01000L, 0x24));
        ioapic.line(4).set(true);
        ioapic.line(4).set(true); // no new edge
        assertThat(sent).hasSize(2);
        assertThat(readReg(0x18) & (1 << 14)).isZero(); // no Remote IRR for edges
    }

    @Test
    void logicalLowestPriorityMessage() {
        // vector 0x31, lowest priority, logical destination 0x0f
        program(7, 0x0f000000_00000000L | 0x31 | 1 << 8 | 1 << 11);
        ioapic.line(7).pulse();
        assertThat(sent).containsExactly(new Msi(0xfee0f004L, 0x131));
    }

    @Test
    void extendedDestinationIdGoesToAddressBits5To11() {
        program(3, 0x02000000_00000040L | 0x05L << 49);
        ioapic.line(3).pulse();
        assertThat(sent).containsExactly(new Msi(0xfee020a0L, 0x40));
    }

    @Test
    void aMaskedEdgeStaysPendingUntilUnmasked() {
        program(5, 0x00000000_00010035L); // masked
        ioapic.line(5).pulse();
        ioapic.line(5).pulse(); // one pending edge, however many arrive
        assertThat(sent).isEmpty();
        program(5, 0x00000000_00000035L); // unmask: the pending edge goes out once
        assertThat(sent).containsExactly(new Msi(0xfee00000L, 0x35));
        program(5, 0x00000000_00000036L); // reprogramming an unmasked pin sends nothing new
        assertThat(sent).hasSize(1);
        ioapic.line(5).pulse();
        assertThat(sent).hasSize(2);
    }

    @Test
    void aPendingEdgeIsNoLevelRequest() {
        program(6, 0x00000000_00010036L); // masked, edge
        ioapic.line(6).pulse();
        program(6, 0x00000000_00008036L); // unmasked, level, input low: nothing to send
        assertThat(sent).isEmpty();
    }

    @Test
    void endOfInterruptNoticesComeWithoutTheIoapicsLock() {
        List<Integer> ended = new ArrayList<>();
        List<Boolean> lockHeld = new ArrayList<>();
        IoApic[] self = new IoApic[1];
        self[0] = new IoApic("ioapic", 0, new MsiSink() {
            @Override
            public void deliver(long address, int data) {}

            @Override
            public void endOfInterrupt(int pin) {
                ended.add(pin);
                lockHeld.add(Thread.holdsLock(self[0]));
            }
        });
        try (IoApic apic = self[0]) {
            apic.write(0x00, 4, 0x10 + 2 * 9);
            apic.write(0x10, 4, 0x8029); // pin 9: level, vector 0x29
            apic.write(0x00, 4, 0x10 + 2 * 4);
            apic.write(0x10, 4, 0x0029); // pin 4: edge, the same vector
            apic.line(9).set(true);
            apic.line(4).pulse();
            apic.endOfInterrupt(0x29);
            apic.write(0x40, 4, 0x29); // Remote IRR is set again (still asserted): the register ends it too
            apic.endOfInterrupt(0x31); // no pin has that vector
        }
        assertThat(ended).containsExactly(9, 9); // level pins only
        assertThat(lockHeld).containsOnly(false);
    }

    @Test
    void anEndOfInterruptListenerThatQuietensTheDeviceGetsNoSecondDelivery() {
        List<Integer> delivered = new ArrayList<>();
        IoApic[] self = new IoApic[1];
        self[0] = new IoApic("ioapic", 0, new MsiSink() {
            @Override
            public void deliver(long address, int data) {
                delivered.add(data);
            }

            @Override
            public void endOfInterrupt(int pin) {
                self[0].line(pin).set(false); // VFIO's way: the EOI notice lowers the line, then unmasks
            }
        });
        try (IoApic apic = self[0]) {
            apic.write(0x00, 4, 0x10 + 2 * 9);
            apic.write(0x10, 4, 0x8029);
            apic.line(9).set(true);
            apic.endOfInterrupt(0x29);
            assertThat(delivered).as("notified before re-evaluating, as KVM's and QEMU's IOAPICs").containsExactly(0x8029);
            apic.line(9).set(true);
            assertThat(delivered).containsExactly(0x8029, 0x8029);
        }
    }

    @Test
    void levelPinRemoteIrrEoiAndRedelivery() {
        program(9, 0x00000000_00008029L); // level, vector 0x29
        ioapic.line(9).set(true);
        assertThat(sent).containsExactly(new Msi(0xfee00000L, 0x8029));
        assertThat(readReg(0x10 + 18) & (1 << 14)).isNotZero(); // Remote IRR
        ioapic.line(9).set(true);
        assertThat(sent).hasSize(1); // held back by Remote IRR
        ioapic.endOfInterrupt(0x30); // another vector: nothing
        assertThat(sent).hasSize(1);
        ioapic.endOfInterrupt(0x29); // still asserted: again
        assertThat(sent).hasSize(2);
        ioapic.line(9).set(false);
        ioapic.endOfInterrupt(0x29);
        assertThat(sent).hasSize(2);
        assertThat(readReg(0x10 + 18) & (1 << 14)).isZero();
        ioapic.line(9).set(true);
        assertThat(sent).hasSize(3);
    }

    @Test
    void eoiRegisterDoesWhatTheEoiExitDoes() {
        program(10, 0x00000000_00008050L);
        ioapic.line(10).set(true);
        ioapic.write(0x40, 4, 0x50);
        assertThat(sent).hasSize(2);
    }

    @Test
    void maskedLevelPinDeliversWhenUnmasked() {
        program(11, 0x00000000_00018061L); // masked, level
        ioapic.line(11).set(true);
        assertThat(sent).isEmpty();
        program(11, 0x00000000_00008061L);
        assertThat(sent).containsExactly(new Msi(0xfee00000L, 0x8061));
    }

    @Test
    void readOnlyBitsIgnoreWrites() {
        program(12, 0x00000000_00008070L);
        writeReg(0x10 + 24, 0x0000d070); // level, and tries to set delivery status and Remote IRR
        assertThat(readReg(0x10 + 24) & (1 << 12 | 1 << 14)).isZero();
        ioapic.line(12).set(true);
        assertThat(readReg(0x10 + 24) & (1 << 14)).isNotZero();
        writeReg(0x10 + 24, 0x00008070); // rewriting keeps Remote IRR
        assertThat(readReg(0x10 + 24) & (1 << 14)).isNotZero();
        writeReg(0x10 + 24, 0x00000070); // turning the pin to edge drops it
        assertThat(readReg(0x10 + 24) & (1 << 14)).isZero();
    }

    @Test
    void aGuestThatNeverAcknowledgesGetsOneInterrupt() {
        ManualTimer timer = new ManualTimer(0);
        AtomicInteger timersMade = new AtomicInteger();
        List<Integer> got = new ArrayList<>();
        try (IoApic apic = new IoApic("ioapic", 0, (address, data) -> got.add(data), () -> {
            timersMade.incrementAndGet();
            return timer;
        })) {
            apic.write(0x00, 4, 0x10 + 18);
            apic.write(0x10, 4, 0x8029); // pin 9: level, vector 0x29
            apic.line(9).set(true);
            timer.advanceBy(10 * IoApic.STORM_DELAY_NANOS);
            assertThat(got).containsExactly(0x8029);
            assertThat(timersMade).as("timers made").hasValue(0);
        }
    }

    @Test
    void anEoiStormIsSlowedDown() {
        ManualTimer timer = new ManualTimer(0);
        List<Long> times = new ArrayList<>();
        try (IoApic apic = new IoApic("ioapic", 0, (address, data) -> times.add(timer.now()), () -> timer)) {
            apic.write(0x00, 4, 0x10 + 18);
            apic.write(0x10, 4, 0x8029); // pin 9: level, vector 0x29
            apic.line(9).set(true);
            // a guest that EOIs without quietening the device: each EOI re-delivers at once...
            for (int i = 1; i < IoApic.STORM_LIMIT; i++) {
                apic.endOfInterrupt(0x29);
            }
            assertThat(times).hasSize(IoApic.STORM_LIMIT).containsOnly(0L);
            // ...until the limit: then the next delivery comes from the timer 10 ms later
            apic.endOfInterrupt(0x29);
            apic.endOfInterrupt(0x29); // Remote IRR is clear until then: nothing to do
            assertThat(times).hasSize(IoApic.STORM_LIMIT);
            timer.advanceTo(IoApic.STORM_DELAY_NANOS - 1);
            assertThat(times).hasSize(IoApic.STORM_LIMIT);
            timer.advanceTo(IoApic.STORM_DELAY_NANOS);
            assertThat(times).hasSize(IoApic.STORM_LIMIT + 1).last().isEqualTo(IoApic.STORM_DELAY_NANOS);
            timer.advanceBy(100 * IoApic.STORM_DELAY_NANOS); // and nothing more without another EOI
            assertThat(times).hasSize(IoApic.STORM_LIMIT + 1);
            apic.endOfInterrupt(0x29); // the count started again: immediate
            assertThat(times).hasSize(IoApic.STORM_LIMIT + 2).last().isEqualTo(101 * IoApic.STORM_DELAY_NANOS);
        }
        assertThat(timer.stopped()).as("closed with the IOAPIC").isTrue();
    }

    @Test
    void invalidAccessesAreIgnored() {
        program(1, 0x00000000_00000021L);
        assertThat(ioapic.read(0x10, 1)).isEqualTo(0xff);
        assertThat(ioapic.read(0x10, 8)).isEqualTo(-1L);
        assertThat(ioapic.read(0x20, 4)).isEqualTo(0xffffffffL);
        assertThat(ioapic.read(0x40, 4)).isEqualTo(0xffffffffL);
        ioapic.write(0x00, 4, 0x12);
        ioapic.write(0x10, 2, 0x10000);
        ioapic.write(0x14, 4, 0x10000);
        ioapic.write(0x40, 1, 0x21);
        assertThat(readReg(0x12)).isEqualTo(0x21);
        assertThat(ioapic.busRanges()).singleElement()
                .satisfies(r -> assertThat(r.base()).isEqualTo(0xfec00000L));
    }

    @Test
    void defaultSinkMethodForwardsToTheFunctionalOne() {
        List<Long> got = new ArrayList<>();
        try (IoApic plain = new IoApic((address, data) -> got.add(address << 32 | data))) {
            plain.write(0x00, 4, 0x10);
            plain.write(0x10, 4, 0x30);
            plain.line(0).pulse();
        }
        assertThat(got).containsExactly(0xfee00000L << 32 | 0x30);
    }
}
