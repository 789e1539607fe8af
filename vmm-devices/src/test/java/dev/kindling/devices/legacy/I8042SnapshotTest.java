package dev.kindling.devices.legacy;

import static dev.kindling.devices.legacy.I8042.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class I8042SnapshotTest {
    /** A controller with its reset counter and both lines. */
    static final class Rig {
        final AtomicInteger resets = new AtomicInteger();
        final RecordingLine kbdIrq = new RecordingLine(1);
        final RecordingLine auxIrq = new RecordingLine(12);
        final I8042 kbc = new I8042("i8042", resets::incrementAndGet, kbdIrq, auxIrq);

        int status() {
            return (int) kbc.read(OFFSET_COMMAND, 1);
        }

        int data() {
            return (int) kbc.read(OFFSET_DATA, 1);
        }

        void command(int c) {
            kbc.write(OFFSET_COMMAND, 1, c);
        }

        void data(int v) {
            kbc.write(OFFSET_DATA, 1, v);
        }
    }

    private static byte[] save(I8042 k) {
        StateWriter w = new StateWriter();
        k.saveState(w);
        return w.toByteArray();
    }

    private static void restore(I8042 k, byte[] state) {
        StateReader r = new StateReader(state, "i8042");
        k.restoreState(r);
        r.expectEnd();
    }

    /**
     * Command byte 0x47, the keyboard in the middle of "set scancode set" (its ACK in the output
     * buffer), two make/break bytes queued behind it, and a "write output port" command waiting.
     */
    private static Rig busy() {
        Rig rig = new Rig();
        rig.command(0x60);
        rig.data(0x47);
        rig.data(0xf0);
        assertThat(rig.kbc.injectKeyboardBytes((byte) 0x1e, (byte) 0x9e)).isTrue();
        rig.command(0xd1);
        assertThat(rig.kbdIrq.level()).isTrue();
        return rig;
    }

    /** What the guest does next: write the output port, read it back, read the rest, finish the keyboard command. */
    private static List<Integer> drive(Rig rig) {
        List<Integer> seen = new ArrayList<>();
        rig.data(0xdd); // output port: A20 off, reset line high
        rig.command(0xd0);
        for (int i = 0; i < 4; i++) {
            seen.add(rig.data());
        }
        rig.data(0x00); // "get scancode set"
        seen.add(rig.data());
        seen.add(rig.data());
        seen.add(rig.status());
        return seen;
    }

    @Test
    void restoredControllerAnswersAsTheSavedOne() {
        Rig old = busy();
        byte[] state = save(old.kbc);
        Rig fresh = new Rig();
        restore(fresh.kbc, state);
        assertThat(fresh.kbdIrq.events()).containsExactly("1"); // the ACK waiting raises IRQ 1 again
        assertThat(fresh.auxIrq.events()).isEmpty();
        assertThat(fresh.kbc.commandByte()).isEqualTo(old.kbc.commandByte()).isEqualTo(0x47);
        assertThat(fresh.status()).isEqualTo(old.status())
                .isEqualTo(STATUS_UNLOCKED | STATUS_CMD | STATUS_SYS | STATUS_OBF);
        List<Integer> expected = List.of(0xdd, 0xfa, 0x1e, 0x9e, 0xfa, 0x41, STATUS_UNLOCKED | STATUS_SYS);
        assertThat(drive(fresh)).isEqualTo(drive(old)).isEqualTo(expected);
        assertThat(fresh.kbdIrq.level()).isFalse();
        assertThat(fresh.resets.get()).isZero();
    }

    @Test
    void aFreshControllerAnswersOtherwise() {
        // the same accesses without the restored state: the 0xdd is a keyboard byte, not the output port
        assertThat(drive(new Rig())).isNotEqualTo(drive(busy()));
    }

    @Test
    void truncatedOrCorruptStateIsRefusedAndChangesNothing() {
        byte[] state = save(busy().kbc);
        Rig fresh = new Rig();
        assertThatThrownBy(() -> restore(fresh.kbc, Arrays.copyOf(state, state.length - 1)))
                .isInstanceOf(SnapshotException.class);
        byte[] badSet = state.clone();
        badSet[badSet.length - 1] = 4;
        assertThatThrownBy(() -> restore(fresh.kbc, badSet)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("scancode");
        byte[] badCommand = state.clone();
        badCommand[37] = 0x50; // pending controller command
        assertThatThrownBy(() -> restore(fresh.kbc, badCommand)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("command");
        // a keyboard queue of 17 bytes where the keyboard holds 16: the 2 saved ones, then 15 more
        assertThat(state[45]).isEqualTo((byte) 2);
        byte[] badQueue = new byte[state.length + 15];
        System.arraycopy(state, 0, badQueue, 0, 45);
        badQueue[45] = 17;
        System.arraycopy(state, 49, badQueue, 49, 2);
        System.arraycopy(state, 51, badQueue, 51 + 15, state.length - 51);
        assertThatThrownBy(() -> restore(fresh.kbc, badQueue)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("keyboard queue");
        assertThat(fresh.kbc.commandByte()).isEqualTo(CTR_KBD_INT | CTR_SYS | CTR_XLATE);
        assertThat(fresh.status()).isEqualTo(STATUS_UNLOCKED | STATUS_SYS);
        assertThat(fresh.kbdIrq.events()).isEmpty();
        fresh.data(0xee); // echo
        assertThat(fresh.data()).isEqualTo(0xee);
    }
}
