package dev.kindling.devices.legacy;

import static dev.kindling.devices.legacy.Rtc.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(10)
class RtcTest {
    private static final long MIB = 1024 * 1024;
    private static final long GIB = 1024 * MIB;

    /** A Thursday, half a second into 13:45:56 UTC. */
    private final MutableClock clock = new MutableClock(Instant.parse("2024-02-29T13:45:56.500Z"));
    private final RecordingLine irq = new RecordingLine(8);
    private Rtc rtc = new Rtc("rtc", irq, clock, false);

    @AfterEach
    void close() {
        rtc.close();
    }

    private int reg(int index) {
        rtc.write(0, 1, index);
        return (int) rtc.read(1, 1);
    }

    private void reg(int index, int value) {
        rtc.write(0, 1, index);
        rtc.write(1, 1, value);
    }

    @Test
    void bcdTwentyFourHourByDefault() {
        assertThat(reg(SECONDS)).isEqualTo(0x56);
        assertThat(reg(MINUTES)).isEqualTo(0x45);
        assertThat(reg(HOURS)).isEqualTo(0x13);
        assertThat(reg(DAY_OF_WEEK)).isEqualTo(5); // Sunday is 1
        assertThat(reg(DAY_OF_MONTH)).isEqualTo(0x29);
        assertThat(reg(MONTH)).isEqualTo(0x02);
        assertThat(reg(YEAR)).isEqualTo(0x24);
        assertThat(reg(CENTURY)).isEqualTo(0x20);
        assertThat(reg(REG_A)).isEqualTo(0x26);
        assertThat(reg(REG_B)).isEqualTo(B_24H);
        assertThat(reg(REG_D)).isEqualTo(D_VRT);
    }

    @Test
    void binaryMode() {
        reg(REG_B, B_24H | B_BINARY);
        assertThat(reg(SECONDS)).isEqualTo(56);
        assertThat(reg(MINUTES)).isEqualTo(45);
        assertThat(reg(HOURS)).isEqualTo(13);
        assertThat(reg(DAY_OF_MONTH)).isEqualTo(29);
        assertThat(reg(YEAR)).isEqualTo(24);
        assertThat(reg(CENTURY)).isEqualTo(20);
    }

    @Test
    void twelveHourMode() {
        reg(REG_B, 0); // BCD, 12-hour
        assertThat(reg(HOURS)).isEqualTo(0x80 | 0x01); // 1 PM
        reg(REG_B, B_BINARY);
        assertThat(reg(HOURS)).isEqualTo(0x80 | 1);
        clock.set(Instant.parse("2024-02-29T00:10:00Z"));
        assertThat(reg(HOURS)).isEqualTo(12); // 12 AM, binary
        reg(REG_B, 0);
        assertThat(reg(HOURS)).isEqualTo(0x12);
        clock.set(Instant.parse("2024-02-29T12:10:00Z"));
        assertThat(reg(HOURS)).isEqualTo(0x92); // 12 PM
    }

    @Test
    void followsTheClock() {
        clock.advance(Duration.ofSeconds(5));
        assertThat(reg(SECONDS)).isEqualTo(0x01);
        assertThat(reg(MINUTES)).isEqualTo(0x46);
    }

    @Test
    void updateInProgressDuringTheLast244MicrosecondsOfASecond() {
        clock.set(Instant.parse("2024-02-29T13:45:56.999700Z"));
        assertThat(reg(REG_A) & A_UIP).isZero();
        clock.set(Instant.parse("2024-02-29T13:45:56.999800Z"));
        assertThat(reg(REG_A) & A_UIP).isEqualTo(A_UIP);
        assertThat(reg(SECONDS)).isEqualTo(0x56); // the update has not happened yet
        clock.set(Instant.parse("2024-02-29T13:45:57.000001Z"));
        assertThat(reg(REG_A) & A_UIP).isZero();
        assertThat(reg(SECONDS)).isEqualTo(0x57);
        clock.set(Instant.parse("2024-02-29T13:45:57.999900Z"));
        reg(REG_B, B_SET | B_24H);
        assertThat(reg(REG_A) & A_UIP).isZero(); // no updates while SET
    }

    @Test
    void indexIgnoresTheNmiBitAndReadsAsOnes() {
        rtc.write(0, 1, 0x80 | REG_A);
        assertThat(rtc.read(1, 1)).isEqualTo(0x26);
        assertThat(rtc.read(0, 1)).isEqualTo(0xff);
        reg(0x80 | 0x40, 0x99);
        assertThat(reg(0x40)).isEqualTo(0x99);
    }

    @Test
    void invalidAccessesAreIgnored() {
        reg(0x40, 0x12);
        assertThat(rtc.read(1, 2)).isEqualTo(0xffff);
        assertThat(rtc.read(2, 1)).isEqualTo(0xff);
        rtc.write(1, 2, 0x3434);
        rtc.write(2, 1, 0x34);
        rtc.write(0, 4, 0x0b);
        assertThat(rtc.read(1, 1)).isEqualTo(0x12); // index still 0x40
        reg(REG_D, 0);
        assertThat(reg(REG_D)).isEqualTo(D_VRT);
    }

    @Test
    void guestSetsTheTimeWithTheSetBit() {
        reg(REG_B, B_SET | B_24H);
        reg(SECONDS, 0x00);
        reg(MINUTES, 0x30);
        reg(HOURS, 0x08);
        reg(DAY_OF_MONTH, 0x01);
        reg(MONTH, 0x01);
        reg(YEAR, 0x99);
        reg(CENTURY, 0x19);
        clock.advance(Duration.ofSeconds(10));
        assertThat(reg(SECONDS)).isEqualTo(0x00); // frozen while SET
        reg(REG_B, B_24H);
        clock.advance(Duration.ofMillis(5_200));
        assertThat(reg(SECONDS)).isEqualTo(0x05);
        assertThat(reg(MINUTES)).isEqualTo(0x30);
        assertThat(reg(YEAR)).isEqualTo(0x99);
        assertThat(reg(CENTURY)).isEqualTo(0x19);
        assertThat(reg(DAY_OF_WEEK)).isEqualTo(6); // 1999-01-01 was a Friday
    }

    @Test
    void writingARunningClockRegisterSetsTheTime() {
        reg(MINUTES, 0x10);
        assertThat(reg(MINUTES)).isEqualTo(0x10);
        assertThat(reg(HOURS)).isEqualTo(0x13);
        clock.advance(Duration.ofMinutes(1));
        assertThat(reg(MINUTES)).isEqualTo(0x11);
    }

    @Test
    void anImpossibleDateLeavesTheClockAlone() {
        reg(REG_B, B_SET | B_24H);
        reg(MONTH, 0x13);
        reg(REG_B, B_24H);
        assertThat(reg(MONTH)).isEqualTo(0x02);
        assertThat(reg(HOURS)).isEqualTo(0x13);
    }

    @Test
    void setBitClearsUpdateInterruptEnable() {
        reg(REG_B, B_SET | B_UIE | B_24H);
        assertThat(reg(REG_B)).isEqualTo(B_SET | B_24H);
    }

    @Test
    void updateEndedInterrupt() {
        reg(REG_A, 0x20); // periodic rate off, so PF stays out of register C
        reg(REG_B, B_UIE | B_24H);
        assertThat(irq.level()).isFalse();
        clock.advance(Duration.ofMillis(400)); // still 13:45:56
        rtc.poll();
        assertThat(irq.level()).isFalse();
        clock.advance(Duration.ofMillis(200)); // 13:45:57.1
        rtc.poll();
        assertThat(irq.level()).isTrue();
        assertThat(reg(REG_C)).isEqualTo(C_IRQF | C_UF);
        assertThat(irq.level()).isFalse();
        assertThat(reg(REG_C)).isZero();
        clock.advance(Duration.ofSeconds(1));
        rtc.poll();
        assertThat(irq.events()).containsExactly("1", "0", "1");
    }

    @Test
    void flagsAreSetWithoutTheirEnableButRaiseNothing() {
        clock.advance(Duration.ofSeconds(1));
        assertThat(reg(REG_C)).isEqualTo(C_UF | C_PF); // the default 1024 Hz rate runs even without PIE
        assertThat(irq.events()).isEmpty();
    }

    @Test
    void enablingWithAFlagAlreadySetRaisesAtOnce() {
        clock.advance(Duration.ofSeconds(1));
        rtc.poll();
        reg(REG_B, B_UIE | B_24H);
        assertThat(irq.level()).isTrue();
        reg(REG_B, B_24H);
        assertThat(irq.level()).isFalse();
    }

    @Test
    void periodicInterrupt() {
        reg(REG_A, 0x2f); // rate 15: 2 Hz
        reg(REG_C);
        reg(REG_B, B_PIE | B_24H);
        clock.set(Instant.parse("2024-02-29T13:45:56.900Z"));
        rtc.poll();
        assertThat(irq.level()).isFalse(); // the 0.5 s period began at .500
        clock.set(Instant.parse("2024-02-29T13:45:57.001Z"));
        rtc.poll();
        assertThat(irq.level()).isTrue();
        assertThat(reg(REG_C) & (C_IRQF | C_PF)).isEqualTo(C_IRQF | C_PF);
        clock.set(Instant.parse("2024-02-29T13:45:57.400Z"));
        rtc.poll();
        assertThat(irq.level()).isFalse();
        clock.set(Instant.parse("2024-02-29T13:45:57.500Z"));
        rtc.poll();
        assertThat(irq.level()).isTrue();
    }

    @Test
    void alarmInterruptWithDontCareFields() {
        reg(REG_A, 0x20);
        reg(SECONDS_ALARM, 0x58);
        reg(MINUTES_ALARM, 0x45);
        reg(HOURS_ALARM, 0xc0); // any hour
        reg(REG_B, B_AIE | B_24H);
        clock.advance(Duration.ofSeconds(1)); // :57
        rtc.poll();
        assertThat(irq.level()).isFalse();
        assertThat(reg(REG_C) & C_AF).isZero();
        clock.advance(Duration.ofSeconds(1)); // :58
        rtc.poll();
        assertThat(irq.level()).isTrue();
        assertThat(reg(REG_C)).isEqualTo(C_IRQF | C_AF | C_UF);
        // an alarm passed while nobody looked is still noticed
        clock.advance(Duration.ofHours(1).minusSeconds(2));
        assertThat(reg(REG_C) & C_AF).isZero();
        clock.advance(Duration.ofSeconds(5));
        assertThat(reg(REG_C) & C_AF).isEqualTo(C_AF);
    }

    @Test
    void memorySizeBytesFor64MiB() {
        Map<Integer, Integer> m = Rtc.memorySizeBytes(64 * MIB, 0);
        assertThat(m).containsEntry(0x15, 0x80).containsEntry(0x16, 0x02); // 640 KiB
        assertThat(m).containsEntry(0x17, 0x00).containsEntry(0x18, 0xfc); // 63 MiB = 64512 KiB
        assertThat(m).containsEntry(0x30, 0x00).containsEntry(0x31, 0xfc);
        assertThat(m).containsEntry(0x34, 0x00).containsEntry(0x35, 0x03); // 48 MiB = 768 x 64 KiB
        assertThat(m).containsEntry(0x5b, 0).containsEntry(0x5c, 0).containsEntry(0x5d, 0);
    }

    @Test
    void memorySizeBytesFor3GiBSplitAround4G() {
        // microvm puts 2 GiB below 4 GiB and the rest above when RAM >= 0xb0000000
        Map<Integer, Integer> m = Rtc.memorySizeBytes(2 * GIB, GIB);
        assertThat(m).containsEntry(0x15, 0x80).containsEntry(0x16, 0x02);
        assertThat(m).containsEntry(0x17, 0xff).containsEntry(0x18, 0xff); // capped at 65535
        assertThat(m).containsEntry(0x30, 0xff).containsEntry(0x31, 0xff);
        assertThat(m).containsEntry(0x34, 0x00).containsEntry(0x35, 0x7f); // 32512 blocks
        assertThat(m).containsEntry(0x5b, 0x00).containsEntry(0x5c, 0x40).containsEntry(0x5d, 0x00); // 16384 blocks
    }

    @Test
    void memorySizeBytesFor8GiB() {
        Map<Integer, Integer> m = Rtc.memorySizeBytes(2 * GIB, 6 * GIB);
        assertThat(m).containsEntry(0x5b, 0x00).containsEntry(0x5c, 0x80).containsEntry(0x5d, 0x01); // 98304 blocks
        Map<Integer, Integer> all = Rtc.memorySizeBytes(0xb0000000L - 1, 0);
        assertThat(all).containsEntry(0x34, 0xff).containsEntry(0x35, 0xae); // (2.75 GiB - 16 MiB) / 64 KiB - 1 -> 44799
    }

    @Test
    void memorySizeForTinyGuests() {
        Map<Integer, Integer> m = Rtc.memorySizeBytes(512 * 1024, 0);
        assertThat(m).containsEntry(0x15, 0x00).containsEntry(0x16, 0x02); // 512 KiB
        assertThat(m).containsEntry(0x17, 0).containsEntry(0x18, 0).containsEntry(0x34, 0).containsEntry(0x35, 0);
    }

    @Test
    void memorySizeIsReadableThroughThePorts() {
        rtc.setMemorySize(2 * GIB, 6 * GIB);
        assertThat(reg(0x5c)).isEqualTo(0x80);
        assertThat(reg(0x5d)).isEqualTo(0x01);
        assertThat(rtc.cmos(0x17)).isEqualTo(0xff);
        rtc.setCmos(0x5f, 3);
        assertThat(reg(0x5f)).isEqualTo(3);
        assertThatThrownBy(() -> rtc.setCmos(0x0b, 0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    @Timeout(180)
    void periodicInterruptsFromTheTimerThreadInRealTime() throws Exception {
        rtc.close();
        rtc = new Rtc("rtc-real", irq, Clock.systemUTC());
        reg(REG_A, 0x26); // 1024 Hz
        reg(REG_C);
        reg(REG_B, B_PIE | B_24H);
        // a period is 1 ms: the deadlines only bound a machine too loaded to run the thread at all
        assertThat(irq.awaitLevel(true, 60_000)).isTrue();
        assertThat(reg(REG_C) & (C_IRQF | C_PF)).isEqualTo(C_IRQF | C_PF);
        assertThat(irq.awaitLevel(true, 60_000)).isTrue(); // again after the read lowered it
        reg(REG_B, B_24H); // off
        reg(REG_C);
        assertThat(irq.level()).isFalse();
        Thread thread = Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().equals("rtc-real-timer")).findFirst().orElseThrow();
        rtc.close();
        thread.join(60_000); // close() waits for it too, but only for a second
        assertThat(thread.isAlive()).as("timer thread alive after close").isFalse();
    }
}
