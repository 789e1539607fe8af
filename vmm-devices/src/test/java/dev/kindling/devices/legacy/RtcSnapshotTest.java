package dev.kindling.devices.legacy;

import static dev.kindling.devices.legacy.Rtc.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(10)
class RtcSnapshotTest {
    /** An RTC without its timer thread on a hand-moved clock. */
    static final class Rig {
        final MutableClock clock;
        final RecordingLine irq = new RecordingLine(8);
        final Rtc rtc;

        Rig(String start) {
            clock = new MutableClock(Instant.parse(start));
            rtc = new Rtc("rtc", irq, clock, false);
        }

        int reg(int index) {
            rtc.write(0, 1, index);
            return (int) rtc.read(1, 1);
        }

        void reg(int index, int value) {
            rtc.write(0, 1, index);
            rtc.write(1, 1, value);
        }

        /** Every byte but register C (reading it clears it) and the index port's effect. */
        List<Integer> bytes() {
            List<Integer> r = new ArrayList<>();
            for (int i = 0; i < 128; i++) {
                if (i != REG_C) {
                    r.add(reg(i));
                }
            }
            return r;
        }
    }

    private static byte[] save(Rtc r) {
        StateWriter w = new StateWriter();
        r.saveState(w);
        return w.toByteArray();
    }

    private static void restore(Rtc r, byte[] state) {
        StateReader in = new StateReader(state, "rtc");
        r.restoreState(in);
        in.expectEnd();
    }

    /**
     * The guest set its clock to 2031-07-04 09:30:00 (binary, 24h), an alarm at 09:30:05, the
     * update interrupt enabled and pending, a CMOS RAM byte written, index left at 0x40.
     */
    private static Rig busy() {
        Rig rig = new Rig("2024-02-29T13:45:56.250Z");
        rig.reg(REG_B, B_SET | B_24H | B_BINARY);
        int[][] time = {{SECONDS, 0}, {MINUTES, 30}, {HOURS, 9}, {DAY_OF_MONTH, 4}, {MONTH, 7}, {YEAR, 31},
                {CENTURY, 20}, {SECONDS_ALARM, 5}, {MINUTES_ALARM, 30}, {HOURS_ALARM, 9}};
        for (int[] t : time) {
            rig.reg(t[0], t[1]);
        }
        rig.reg(REG_B, B_24H | B_BINARY | B_UIE | B_AIE);
        rig.reg(0x40, 0x5a);
        rig.clock.advance(Duration.ofMillis(1500));
        rig.rtc.poll();
        assertThat(rig.irq.level()).isTrue();
        rig.rtc.write(0, 1, 0x40);
        return rig;
    }

    @Test
    void restoredRtcKeepsTheGuestsTimeAlarmAndPendingInterrupt() {
        Rig old = busy();
        byte[] state = save(old.rtc);
        Rig fresh = new Rig("2024-02-29T13:45:56.250Z");
        fresh.clock.advance(Duration.ofMillis(1500));
        restore(fresh.rtc, state);
        assertThat(fresh.irq.events()).containsExactly("1"); // the new machine's line raised
        assertThat(fresh.rtc.read(1, 1)).isEqualTo(0x5a); // index kept
        assertThat(fresh.bytes()).isEqualTo(old.bytes());
        assertThat(fresh.reg(SECONDS)).isEqualTo(1);
        assertThat(fresh.reg(MINUTES)).isEqualTo(30);
        assertThat(fresh.reg(YEAR)).isEqualTo(31);

        for (Rig rig : List.of(old, fresh)) {
            assertThat(rig.reg(REG_C)).isEqualTo(C_IRQF | C_PF | C_UF); // PF counts without PIE
            assertThat(rig.irq.level()).isFalse();
            rig.clock.advance(Duration.ofSeconds(4)); // 09:30:05: the alarm
            rig.rtc.poll();
            assertThat(rig.irq.level()).isTrue();
            assertThat(rig.reg(REG_C)).isEqualTo(C_IRQF | C_PF | C_UF | C_AF);
        }
        assertThat(fresh.reg(SECONDS)).isEqualTo(old.reg(SECONDS)).isEqualTo(5);

        // on a host whose clock is 2 s on, the guest's clock is too: it keeps its offset, as QEMU's rtc base
        Rig later = new Rig("2024-02-29T13:45:59.750Z");
        restore(later.rtc, state);
        assertThat(later.reg(SECONDS)).isEqualTo(3);
        assertThat(later.reg(MINUTES)).isEqualTo(30);
    }

    @Test
    void restoredPeriodicInterruptKeepsFiringFromItsTimer() throws InterruptedException {
        RecordingLine line = new RecordingLine(8);
        Rtc old = new Rtc("rtc", line, Clock.systemUTC(), false);
        old.write(0, 1, REG_A);
        old.write(1, 1, 0x2f); // 2 Hz
        old.write(0, 1, REG_B);
        old.write(1, 1, B_24H | B_PIE);
        byte[] state = save(old);
        RecordingLine freshLine = new RecordingLine(8);
        Rtc fresh = new Rtc("rtc", freshLine, Clock.systemUTC()); // with its timer thread
        try {
            restore(fresh, state);
            assertThat(freshLine.awaitLevel(true, 3000)).isTrue(); // within a 0.5 s period, from the timer
            fresh.write(0, 1, REG_C);
            assertThat(fresh.read(1, 1) & C_PF).isEqualTo(C_PF);
            assertThat(freshLine.awaitLevel(false, 100)).isTrue();
            assertThat(freshLine.awaitLevel(true, 3000)).isTrue(); // and again
        } finally {
            fresh.close();
            old.close();
        }
    }

    @Test
    void truncatedOrCorruptStateIsRefusedAndChangesNothing() {
        byte[] state = save(busy().rtc);
        Rig fresh = new Rig("2024-02-29T13:45:56.250Z");
        fresh.reg(0x41, 0x17);
        List<Integer> before = fresh.bytes();
        assertThatThrownBy(() -> restore(fresh.rtc, Arrays.copyOf(state, state.length - 1)))
                .isInstanceOf(SnapshotException.class);
        byte[] badIndex = state.clone();
        badIndex[4 + 128] = (byte) 0x80;
        assertThatThrownBy(() -> restore(fresh.rtc, badIndex)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("index");
        byte[] badSize = state.clone();
        badSize[0] = 127;
        assertThatThrownBy(() -> restore(fresh.rtc, badSize)).isInstanceOf(SnapshotException.class);
        byte[] badLevel = state.clone();
        badLevel[badLevel.length - 1] = 0; // line low though an enabled flag is pending
        assertThatThrownBy(() -> restore(fresh.rtc, badLevel)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("IRQ 8");
        assertThat(fresh.bytes()).isEqualTo(before);
        assertThat(fresh.irq.events()).isEmpty();
        assertThat(fresh.reg(YEAR)).isEqualTo(0x24); // its own clock, not the state's 2031
    }
}
