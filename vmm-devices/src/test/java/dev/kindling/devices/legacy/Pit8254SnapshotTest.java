package dev.kindling.devices.legacy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(20)
class Pit8254SnapshotTest {
    private static final long T0 = 5_000_000_000L;
    /** The restored machine's clock is elsewhere: another host's boot time. */
    private static final long T1 = 900_000_000_000L;

    /** A PIT on its own hand-moved clock and IRQ 0. */
    static final class Rig {
        final ManualTimer timer;
        final RecordingLine irq = new RecordingLine(0);
        final Pit8254 pit;

        Rig(long start) {
            timer = new ManualTimer(start);
            pit = new Pit8254("pit", irq, timer::now, timer);
        }

        void control(int v) {
            pit.write(3, 1, v);
        }

        void count(int channel, int v) {
            pit.write(channel, 1, v);
        }

        int in(int channel) {
            return (int) pit.read(channel, 1);
        }

        int latched(int channel) {
            control(channel << 6);
            return in(channel) | in(channel) << 8;
        }
    }

    private static long nanos(long ticks) {
        return LegacyIo.scaleCeil(ticks, 1_000_000_000L, Pit8254.FREQUENCY_HZ);
    }

    private static byte[] save(Pit8254 p) {
        StateWriter w = new StateWriter();
        p.saveState(w);
        return w.toByteArray();
    }

    private static void restore(Pit8254 p, byte[] state) {
        StateReader r = new StateReader(state, "pit");
        p.restoreState(r);
        r.expectEnd();
    }

    /**
     * Counter 0 periodic (mode 2, 11932 clocks: 10 ms) after 3.5 periods; counter 1 with a count latched
     * and half read; counter 2 in mode 0 paused by its gate; speaker on.
     */
    private static Rig busy() {
        Rig rig = new Rig(T0);
        rig.control(0x34);
        rig.count(0, 11932 & 0xff);
        rig.count(0, 11932 >> 8);
        rig.control(0x74); // counter 1, lobyte/hibyte, mode 2
        rig.count(1, 0x00);
        rig.count(1, 0x10); // 0x1000
        rig.pit.speakerPort().write(0, 1, 0x03);
        rig.control(0xb0); // counter 2, lobyte/hibyte, mode 0
        rig.count(2, 0x00);
        rig.count(2, 0x20); // 0x2000
        rig.timer.advanceTo(T0 + nanos(11932L * 3 + 5966));
        assertThat(rig.irq.pulses()).isEqualTo(3);
        rig.pit.speakerPort().write(0, 1, 0x02); // gate low: counter 2 stops
        rig.control(0x40); // latch counter 1
        assertThat(rig.in(1)).isEqualTo((0x1000 - (11932 * 3 + 5966) % 0x1000) & 0xff);
        return rig;
    }

    @Test
    void restoredPitCountsOnFromWhereItWasOnTheNewClock() {
        Rig old = busy();
        long elapsed = 11932L * 3 + 5966;
        byte[] state = save(old.pit);
        Rig fresh = new Rig(T1);
        restore(fresh.pit, state);
        assertThat(fresh.irq.pulses()).isZero(); // the three edges were delivered on the old machine
        // counter 1's latch survives half read: the high byte comes next
        assertThat(fresh.in(1)).isEqualTo(old.in(1)).isEqualTo(((0x1000 - elapsed % 0x1000) >> 8) & 0xff);
        assertThat(fresh.pit.count(0)).isEqualTo(old.pit.count(0)).isEqualTo(11932 - 5966);
        assertThat(fresh.pit.count(2)).isEqualTo(old.pit.count(2)).isEqualTo((int) Math.floorMod(0x2000 - elapsed, 0x10000));
        assertThat(fresh.pit.speakerPort().read(0, 1) & 0x23).isEqualTo(old.pit.speakerPort().read(0, 1) & 0x23)
                .isEqualTo(0x22); // gate low, speaker on, counter 2 past terminal count: OUT high

        // both go on the same: counter 0 fires at the end of its fourth period, and every period after
        for (Rig rig : new Rig[] {old, fresh}) {
            long base = rig == old ? T0 : T1 - nanos(elapsed);
            rig.timer.advanceTo(base + nanos(11932L * 4) - 1000);
            assertThat(rig.irq.pulses()).isEqualTo(rig == old ? 3 : 0);
            rig.timer.advanceTo(base + nanos(11932L * 4) + 1000);
            assertThat(rig.irq.pulses()).isEqualTo(rig == old ? 4 : 1);
            rig.timer.advanceTo(base + nanos(11932L * 10) + 1000);
            assertThat(rig.irq.pulses()).isEqualTo(rig == old ? 10 : 7);
            assertThat(rig.pit.count(2)).isEqualTo((int) Math.floorMod(0x2000 - elapsed, 0x10000)); // still paused
            rig.pit.speakerPort().write(0, 1, 0x03); // gate high: counter 2 resumes
        }
        assertThat(fresh.latched(0)).isEqualTo(old.latched(0));
        old.timer.advanceBy(nanos(100));
        fresh.timer.advanceBy(nanos(100));
        int expected = (int) Math.floorMod(0x2000 - elapsed - 100, 0x10000);
        // resuming rounds the paused clocks to nanoseconds: one clock either way
        assertThat(fresh.latched(2)).isEqualTo(old.latched(2)).isBetween(expected - 1, expected + 1);
    }

    @Test
    void truncatedOrCorruptStateIsRefusedAndChangesNothing() {
        byte[] state = save(busy().pit);
        Rig fresh = new Rig(T1);
        fresh.control(0x34);
        fresh.count(0, 100);
        fresh.count(0, 0);
        assertThatThrownBy(() -> restore(fresh.pit, Arrays.copyOf(state, state.length - 2)))
                .isInstanceOf(SnapshotException.class);
        byte[] badMode = state.clone();
        badMode[4] = 6; // counter 0's mode
        assertThatThrownBy(() -> restore(fresh.pit, badMode)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("mode");
        byte[] badCount = state.clone();
        badCount[2] = 0x01; // counter 0's count: 0x10000 + 11932
        assertThatThrownBy(() -> restore(fresh.pit, badCount)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("count");
        // the failed restores left the fresh PIT's own programming: 100 clocks, periodic
        fresh.timer.advanceBy(nanos(1000) + 1000);
        assertThat(fresh.irq.pulses()).isEqualTo(10);
        assertThat(fresh.pit.count(0)).isLessThanOrEqualTo(100);
    }
}
