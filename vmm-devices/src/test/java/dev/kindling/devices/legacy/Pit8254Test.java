package dev.kindling.devices.legacy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.bus.BusRange;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(20)
class Pit8254Test {
    private static final long T0 = 5_000_000_000L;
    private final ManualTimer timer = new ManualTimer(T0);
    private final RecordingLine irq = new RecordingLine(0);
    private Pit8254 pit = new Pit8254("pit", irq, timer::now, timer);

    @AfterEach
    void close() {
        pit.close();
    }

    /** The first time at which {@code ticks} input clocks have passed since T0. */
    private static long at(long ticks) {
        return T0 + LegacyIo.scaleCeil(ticks, 1_000_000_000L, Pit8254.FREQUENCY_HZ);
    }

    private void control(int v) {
        pit.write(3, 1, v);
    }

    private void count(int channel, int v) {
        pit.write(channel, 1, v);
    }

    private int in(int channel) {
        return (int) pit.read(channel, 1);
    }

    /** Counter latch command, then lobyte and hibyte. */
    private int latched(int channel) {
        control(channel << 6);
        return in(channel) | in(channel) << 8;
    }

    private void programMode2(int n) {
        control(0x34); // counter 0, lobyte/hibyte, mode 2, binary
        count(0, n & 0xff);
        count(0, n >> 8);
    }

    @Test
    void mode2CounterValuesFollowTime() {
        programMode2(1193);
        assertThat(latched(0)).isEqualTo(1193);
        timer.advanceTo(at(100));
        assertThat(latched(0)).isEqualTo(1093);
        timer.advanceTo(at(1192));
        assertThat(latched(0)).isEqualTo(1);
        assertThat(pit.out(0)).isFalse(); // low during the last clock
        timer.advanceTo(at(1193));
        assertThat(latched(0)).isEqualTo(1193); // reloaded
        assertThat(pit.out(0)).isTrue();
        timer.advanceTo(at(1194));
        assertThat(latched(0)).isEqualTo(1192);
        timer.advanceTo(at(1193L * 1000 + 500));
        assertThat(latched(0)).isEqualTo(693);
    }

    @Test
    void readingWithoutLatchAlternatesLowAndHigh() {
        programMode2(0x1234);
        assertThat(in(0)).isEqualTo(0x34);
        assertThat(in(0)).isEqualTo(0x12);
        timer.advanceTo(at(0x34));
        assertThat(in(0)).isEqualTo(0x00);
        assertThat(in(0)).isEqualTo(0x12);
    }

    @Test
    void latchHoldsTheValueUntilRead() {
        programMode2(1000);
        timer.advanceTo(at(10));
        control(0x00); // latch
        timer.advanceTo(at(500));
        control(0x00); // a second latch before reading is ignored
        assertThat(in(0)).isEqualTo(990 & 0xff);
        timer.advanceTo(at(700));
        assertThat(in(0)).isEqualTo(990 >> 8);
        assertThat(latched(0)).isEqualTo(300);
    }

    @Test
    void mode2PulsesIrq0OncePerPeriod() {
        programMode2(1193);
        assertThat(irq.pulses()).isZero();
        timer.advanceTo(at(1192));
        assertThat(irq.pulses()).isZero();
        timer.advanceTo(at(1193));
        assertThat(irq.pulses()).isEqualTo(1);
        timer.advanceTo(at(1193 * 2 + 5));
        assertThat(irq.pulses()).isEqualTo(2);
        timer.jumpTo(at(1193 * 10)); // a late timer missed several periods: one edge, as a controller latches it
        timer.advanceTo(at(1193 * 10));
        assertThat(irq.pulses()).isEqualTo(3);
        timer.advanceTo(at(1193 * 11)); // then back on schedule
        assertThat(irq.pulses()).isEqualTo(4);
        assertThat(irq.events()).containsOnly("P");
    }

    @Test
    void mode0InterruptOnTerminalCount() {
        control(0x30); // counter 0, lobyte/hibyte, mode 0
        assertThat(pit.out(0)).isFalse();
        count(0, 100);
        count(0, 0);
        timer.advanceTo(at(99));
        assertThat(pit.out(0)).isFalse();
        assertThat(latched(0)).isEqualTo(1);
        assertThat(irq.pulses()).isZero();
        timer.advanceTo(at(100));
        assertThat(pit.out(0)).isTrue();
        assertThat(irq.pulses()).isEqualTo(1);
        timer.advanceTo(at(101));
        assertThat(latched(0)).isEqualTo(0xffff); // keeps counting down, wrapping
        timer.advanceTo(at(100 + 65536 * 3));
        assertThat(irq.pulses()).isEqualTo(1); // one-shot
        assertThat(pit.out(0)).isTrue();
    }

    @Test
    void mode0FirstByteStopsTheCount() {
        control(0x30);
        count(0, 10);
        count(0, 0);
        timer.advanceTo(at(20));
        assertThat(pit.out(0)).isTrue();
        count(0, 50); // first byte of a new count: OUT low, counting stops
        assertThat(pit.out(0)).isFalse();
        count(0, 0);
        timer.advanceTo(at(60));
        assertThat(latched(0)).isEqualTo(10);
    }

    @Test
    void mode3SquareWaveCountsByTwo() {
        control(0x36); // counter 0, lobyte/hibyte, mode 3
        count(0, 10);
        count(0, 0);
        assertThat(latched(0)).isEqualTo(10);
        timer.advanceTo(at(1));
        assertThat(latched(0)).isEqualTo(8);
        assertThat(pit.out(0)).isTrue();
        timer.advanceTo(at(5));
        assertThat(pit.out(0)).isFalse();
        timer.advanceTo(at(10));
        assertThat(pit.out(0)).isTrue();
        assertThat(irq.pulses()).isZero(); // an 8 us period: pulses come no closer than 50 us apart
        timer.advanceTo(T0 + Pit8254.MIN_PERIODIC_NANOS);
        assertThat(irq.pulses()).isEqualTo(1);
    }

    @Test
    void lobyteOnlyAndHibyteOnlyAccess() {
        control(0x14); // counter 0, lobyte only, mode 2
        count(0, 0x50);
        assertThat(in(0)).isEqualTo(0x50);
        assertThat(in(0)).isEqualTo(0x50);
        control(0x24); // hibyte only
        count(0, 0x12);
        assertThat(in(0)).isEqualTo(0x12);
        control(0x00); // the latch follows the access mode: one byte, the high one
        assertThat(in(0)).isEqualTo(0x12);
        assertThat(pit.count(0)).isEqualTo(0x1200);
    }

    @Test
    void countZeroMeans65536() {
        programMode2(0);
        timer.advanceTo(at(1));
        assertThat(latched(0)).isEqualTo(0xffff);
    }

    @Test
    void readBackCommandLatchesStatusAndCount() {
        programMode2(1000);
        timer.advanceTo(at(10));
        control(0xc2); // read-back: count and status of counter 0
        assertThat(in(0)).isEqualTo(0x80 | 0x30 | 0x04); // OUT high, lobyte/hibyte, mode 2, binary
        assertThat(in(0) | in(0) << 8).isEqualTo(990);
        control(0x97); // counter 2, lobyte, mode 3, BCD
        control(0xe8); // read-back: status of counter 2 only
        assertThat(in(2)).isEqualTo(0x80 | 0x40 | 0x10 | 0x06 | 0x01); // null count until a count is written
    }

    @Test
    void bcdCounting() {
        control(0x35); // counter 0, lobyte/hibyte, mode 2, BCD
        count(0, 0x00);
        count(0, 0x10); // 1000 decimal
        assertThat(latched(0)).isEqualTo(0x1000);
        timer.advanceTo(at(1));
        assertThat(latched(0)).isEqualTo(0x0999);
        timer.advanceTo(at(1000));
        assertThat(latched(0)).isEqualTo(0x1000);
    }

    @Test
    void speakerPortGatesCounter2AndShowsItsOut() {
        var port61 = pit.speakerPort();
        assertThat(port61.read(0, 1) & 0x01).isZero(); // gate starts low
        port61.write(0, 1, 0x01);
        assertThat(port61.read(0, 1) & 0x03).isEqualTo(0x01);
        control(0xb0); // counter 2, lobyte/hibyte, mode 0 (what Linux's PIT calibration uses)
        pit.write(2, 1, 0xe8);
        pit.write(2, 1, 0x03); // 1000
        timer.advanceTo(at(999));
        assertThat(port61.read(0, 1) & 0x20).isZero();
        timer.advanceTo(at(1000));
        assertThat(port61.read(0, 1) & 0x20).isEqualTo(0x20);
        port61.write(0, 1, 0x03);
        assertThat(port61.read(0, 1) & 0x03).isEqualTo(0x03);
        // the refresh bit toggles with time
        int a = (int) port61.read(0, 1) & 0x10;
        timer.advanceBy(15_085);
        assertThat((int) port61.read(0, 1) & 0x10).isNotEqualTo(a);
        assertThat(irq.pulses()).isZero(); // counter 2 has no interrupt
    }

    @Test
    void lowGatePausesCounter2() {
        control(0xb0);
        pit.write(2, 1, 100);
        pit.write(2, 1, 0);
        timer.advanceTo(at(50));
        assertThat(pit.count(2)).isEqualTo(100); // gate low: not counting
        pit.speakerPort().write(0, 1, 0x01);
        timer.advanceTo(at(80));
        assertThat(pit.count(2)).isEqualTo(70);
        pit.speakerPort().write(0, 1, 0x00);
        timer.advanceTo(at(500));
        assertThat(pit.count(2)).isEqualTo(70);
        pit.speakerPort().write(0, 1, 0x01);
        timer.advanceTo(at(510));
        assertThat(pit.count(2)).isBetween(59, 61);
    }

    @Test
    void hardwareOneShotMode1StartsOnTheGate() {
        control(0xb2); // counter 2, lobyte/hibyte, mode 1
        pit.write(2, 1, 10);
        pit.write(2, 1, 0);
        assertThat(pit.out(2)).isTrue();
        timer.advanceTo(at(100));
        assertThat(pit.out(2)).isTrue(); // not triggered yet
        pit.speakerPort().write(0, 1, 0x01); // rising gate triggers
        assertThat(pit.out(2)).isFalse();
        timer.advanceTo(at(109));
        assertThat(pit.out(2)).isFalse();
        timer.advanceTo(at(110));
        assertThat(pit.out(2)).isTrue();
    }

    @Test
    void invalidAccessesAreIgnored() {
        programMode2(1000);
        assertThat(pit.read(3, 1)).isEqualTo(0xff); // control word is write-only
        assertThat(pit.read(0, 2)).isEqualTo(0xffff);
        assertThat(pit.read(4, 1)).isEqualTo(0xff);
        pit.write(0, 2, 0x1111);
        pit.write(3, 4, 0x30);
        assertThat(latched(0)).isEqualTo(1000);
        assertThat(pit.speakerPort().read(1, 1)).isEqualTo(0xff);
        assertThat(pit.busRanges()).extracting(BusRange::base).containsExactly(0x40L, 0x61L);
    }

    @Test
    void timerPulsesIrq0AtTheEndOfEachPeriod() {
        programMode2(1193);
        for (int k = 1; k <= 100; k++) {
            timer.advanceTo(at(1193L * k) - 1);
            assertThat(irq.pulses()).as("just before edge %d", k).isEqualTo(k - 1);
            timer.advanceTo(at(1193L * k));
            assertThat(irq.pulses()).as("at edge %d", k).isEqualTo(k);
        }
        assertThat(timer.pending()).isEqualTo(1);
        programMode2(500); // a new count re-arms the timer from the load
        assertThat(timer.pending()).isEqualTo(1);
        long load = timer.now();
        timer.advanceTo(load + LegacyIo.scaleCeil(500, 1_000_000_000L, Pit8254.FREQUENCY_HZ) - 1);
        assertThat(irq.pulses()).isEqualTo(100);
        timer.advanceTo(load + LegacyIo.scaleCeil(500, 1_000_000_000L, Pit8254.FREQUENCY_HZ));
        assertThat(irq.pulses()).isEqualTo(101);
    }

    @Test
    void timerPulsesAOneShotOnce() {
        control(0x30);
        count(0, 0x9c);
        count(0, 0x2e); // 11932 clocks: 10 ms
        timer.advanceTo(at(11932) - 1);
        assertThat(irq.pulses()).isZero();
        timer.advanceTo(at(11932));
        assertThat(irq.pulses()).isEqualTo(1);
        assertThat(timer.pending()).isZero();
        timer.advanceBy(1_000_000_000L);
        assertThat(irq.pulses()).isEqualTo(1);
    }

    @Test
    void tinyPeriodsAreRateLimitedTo20kHz() {
        programMode2(2); // asks for 600 kHz
        timer.advanceBy(200_000_000L);
        assertThat(irq.pulses()).isEqualTo(200_000_000 / (int) Pit8254.MIN_PERIODIC_NANOS);
    }

    @Test
    void closeStopsTheTimer() {
        programMode2(1193);
        timer.advanceTo(at(1193));
        assertThat(irq.pulses()).isEqualTo(1);
        pit.close();
        assertThat(timer.stopped()).isTrue();
        programMode2(100); // writes after close arm nothing
        timer.advanceBy(1_000_000_000L);
        assertThat(irq.pulses()).isEqualTo(1);
    }

    @Test
    @Timeout(120)
    void theTimerThreadPulsesIrq0InRealTime() throws Exception {
        pit.close();
        pit = new Pit8254("pit-realtime", irq, System::nanoTime);
        long t0 = System.nanoTime(); // before the count is loaded: no edge can come earlier
        programMode2(1193); // 1 kHz
        assertThat(irq.awaitPulses(20, 60_000)).isTrue();
        int pulses = irq.pulses();
        long ticks = LegacyIo.scale(System.nanoTime() - t0, Pit8254.FREQUENCY_HZ, 1_000_000_000L);
        // however late the thread runs, never more than one pulse per period that has passed
        assertThat((long) pulses).as("pulses after %d periods", ticks / 1193).isLessThanOrEqualTo(ticks / 1193);
        Thread thread = Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().equals("pit-realtime-timer")).findFirst().orElseThrow();
        pit.close();
        thread.join(60_000); // close() waits for it too, but only for a second
        assertThat(thread.isAlive()).as("timer thread alive after close").isFalse();
    }
}
