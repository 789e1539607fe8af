package dev.kindling.devices.legacy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.bus.Bus;
import dev.kindling.bus.BusRange;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class Pic8259SnapshotTest {
    /** A PIC on its own port bus, recording INTR. */
    static final class Rig {
        final List<Boolean> intr = new ArrayList<>();
        final Pic8259 pic = new Pic8259(intr::add);
        final Bus pio = new Bus("pio");

        Rig() {
            for (BusRange r : pic.busRanges()) {
                pio.register(r.base(), r.length(), r.device());
            }
        }

        void out(int port, int v) {
            pio.write(port, 1, v);
        }

        int in(int port) {
            return (int) pio.read(port, 1);
        }

        /** IRR, ISR, IMR of both chips and both ELCRs, leaving each chip reading IRR. */
        List<Integer> registers() {
            List<Integer> r = new ArrayList<>();
            for (int base : new int[] {0x20, 0xa0}) {
                out(base, 0x0a);
                r.add(in(base));
                out(base, 0x0b);
                r.add(in(base));
                r.add(in(base + 1));
                out(base, 0x0a);
            }
            r.add(in(0x4d0));
            r.add(in(0x4d1));
            return r;
        }
    }

    private static byte[] save(Pic8259 p) {
        StateWriter w = new StateWriter();
        p.saveState(w);
        return w.toByteArray();
    }

    private static void restore(Pic8259 p, byte[] state) {
        StateReader r = new StateReader(state, "pic");
        p.restoreState(r);
        r.expectEnd();
    }

    /** Linux's init, IRQ 0 in service, IRQ 4 and 9 (level via ELCR) requested, reading ISR on the master. */
    private static Rig busy() {
        Rig rig = new Rig();
        int[][] init = {{0x21, 0xff}, {0xa1, 0xff}, {0x20, 0x11}, {0x21, 0x30}, {0x21, 0x04}, {0x21, 0x01},
                {0xa0, 0x11}, {0xa1, 0x38}, {0xa1, 0x02}, {0xa1, 0x01}, {0x21, 0xe8}, {0xa1, 0xfd}};
        for (int[] w : init) {
            rig.out(w[0], w[1]);
        }
        rig.out(0x4d1, 0x02); // IRQ 9 level-triggered
        rig.pic.raise(0, true);
        assertThat(rig.pic.acknowledge()).isEqualTo(0x30);
        rig.pic.raise(4, true);
        rig.pic.raise(9, true);
        rig.out(0x20, 0x0b); // OCW3: read ISR
        return rig;
    }

    @Test
    void restoredPicReadsAndAcknowledgesAsTheSavedOne() {
        Rig old = busy();
        byte[] state = save(old.pic);
        Rig fresh = new Rig();
        restore(fresh.pic, state);
        // fully nested: IRQ 0 in service holds back 4 and 9, so INTR stays low until EOI
        assertThat(fresh.pic.interruptRequested()).isEqualTo(old.pic.interruptRequested()).isFalse();
        assertThat(fresh.in(0x20)).isEqualTo(old.in(0x20)).isEqualTo(0x01); // ISR (OCW3 kept)
        List<Integer> regs = fresh.registers();
        assertThat(regs).isEqualTo(old.registers());
        assertThat(regs).containsExactly(0x14, 0x01, 0xe8, 0x02, 0x00, 0xfd, 0x00, 0x02);

        for (Rig rig : List.of(old, fresh)) {
            rig.intr.clear();
            rig.out(0x20, 0x20); // EOI for IRQ 0: IRQ 2 (the slave's 9) is next
        }
        assertThat(fresh.intr).isEqualTo(old.intr).containsExactly(true);
        assertThat(fresh.pic.acknowledge()).isEqualTo(old.pic.acknowledge()).isEqualTo(0x39);
        for (Rig rig : List.of(old, fresh)) {
            rig.out(0xa0, 0x20);
            rig.out(0x20, 0x20);
        }
        // IRQ 9 is level and still high: it comes back before IRQ 4
        assertThat(fresh.pic.acknowledge()).isEqualTo(old.pic.acknowledge()).isEqualTo(0x39);
        for (Rig rig : List.of(old, fresh)) {
            rig.pic.raise(9, false);
            rig.out(0xa0, 0x20);
            rig.out(0x20, 0x20);
        }
        assertThat(fresh.pic.acknowledge()).isEqualTo(old.pic.acknowledge()).isEqualTo(0x34);
    }

    @Test
    void aPendingRequestRaisesTheNewMachinesIntr() {
        Rig old = new Rig();
        for (int[] w : new int[][] {{0x20, 0x11}, {0x21, 0x20}, {0x21, 0x04}, {0x21, 0x01}, {0x21, 0x00}}) {
            old.out(w[0], w[1]);
        }
        old.pic.raise(3, true);
        assertThat(old.pic.interruptRequested()).isTrue();
        Rig fresh = new Rig();
        restore(fresh.pic, save(old.pic));
        assertThat(fresh.intr).containsExactly(true);
        assertThat(fresh.pic.acknowledge()).isEqualTo(0x23);
        // the input is still high on the saved state: no new edge, so nothing more
        fresh.pic.raise(3, true);
        fresh.out(0x20, 0x20);
        assertThat(fresh.pic.interruptRequested()).isFalse();
    }

    @Test
    void truncatedOrCorruptStateIsRefusedAndChangesNothing() {
        byte[] state = save(busy().pic);
        Rig fresh = new Rig();
        for (int[] w : new int[][] {{0x20, 0x11}, {0x21, 0x20}, {0x21, 0x04}, {0x21, 0x01}, {0x21, 0x00}}) {
            fresh.out(w[0], w[1]);
        }
        List<Integer> before = fresh.registers();
        assertThatThrownBy(() -> restore(fresh.pic, Arrays.copyOf(state, state.length - 1)))
                .isInstanceOf(SnapshotException.class);
        byte[] badRotation = state.clone();
        badRotation[4] = 8; // master's priority rotation
        assertThatThrownBy(() -> restore(fresh.pic, badRotation)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("rotation");
        byte[] badElcr = state.clone();
        badElcr[7] = 0x01; // ELCR cannot make IRQ 0 level
        assertThatThrownBy(() -> restore(fresh.pic, badElcr)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("ELCR");
        assertThat(fresh.registers()).isEqualTo(before);
        fresh.pic.raise(5, true);
        assertThat(fresh.pic.acknowledge()).isEqualTo(0x25);
    }
}
