package dev.kindling.devices.legacy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(10)
class IoApicSnapshotTest {
    record Msi(long address, int data) {}

    record Route(int pin, long address, int data, boolean masked) {}

    /** An IOAPIC and what it told its sink. */
    static final class Rig implements MsiSink {
        final List<Msi> sent = new ArrayList<>();
        final List<Route> routes = new ArrayList<>();
        final IoApic ioapic = new IoApic("ioapic", 0, this);

        @Override
        public void deliver(long address, int data) {
            sent.add(new Msi(address, data));
        }

        @Override
        public void routeChanged(int pin, long address, int data, boolean masked) {
            routes.add(new Route(pin, address, data, masked));
        }

        int readReg(int reg) {
            ioapic.write(0x00, 4, reg);
            return (int) ioapic.read(0x10, 4);
        }

        void writeReg(int reg, int value) {
            ioapic.write(0x00, 4, reg);
            ioapic.write(0x10, 4, value & 0xffffffffL);
        }

        void program(int pin, long entry) {
            writeReg(0x11 + 2 * pin, (int) (entry >>> 32));
            writeReg(0x10 + 2 * pin, (int) entry);
        }

        int[] registers() {
            int[] r = new int[3 + 2 * IoApic.PINS];
            r[0] = readReg(0);
            r[1] = readReg(1);
            r[2] = readReg(2);
            for (int i = 0; i < 2 * IoApic.PINS; i++) {
                r[3 + i] = readReg(0x10 + i);
            }
            return r;
        }
    }

    private static byte[] save(IoApic a) {
        StateWriter w = new StateWriter();
        a.saveState(w);
        return w.toByteArray();
    }

    private static void restore(IoApic a, byte[] state) {
        StateReader r = new StateReader(state, "ioapic");
        a.restoreState(r);
        r.expectEnd();
    }

    /** Pin 4 edge vector 0x24, pin 9 level 0x39 in service (Remote IRR), pin 5 masked with an edge pending. */
    private static Rig busy() {
        Rig rig = new Rig();
        rig.writeReg(0, 0x05000000);
        rig.program(4, 0x01000000_00000024L);
        rig.program(9, 0x02000000_00008039L);
        rig.program(5, 0x00000000_00010035L);
        rig.ioapic.line(9).set(true);
        rig.ioapic.line(5).pulse();
        rig.ioapic.write(0x00, 4, 0x13); // IOREGSEL left pointing at pin 1's high dword
        assertThat(rig.sent).containsExactly(new Msi(0xfee02000L, 0x8039));
        return rig;
    }

    @Test
    void restoredIoapicReadsAndDeliversAsTheSavedOne() {
        Rig old = busy();
        byte[] state = save(old.ioapic);
        Rig fresh = new Rig();
        restore(fresh.ioapic, state);
        assertThat(fresh.ioapic.read(0x00, 4)).isEqualTo(0x13);
        // the sink learns every pin's route, so KVM's GSI routing matches the guest's programming
        assertThat(fresh.routes).hasSize(IoApic.PINS)
                .contains(new Route(4, 0xfee01000L, 0x24, false), new Route(9, 0xfee02000L, 0x8039, false),
                        new Route(5, 0xfee00000L, 0x35, true));
        assertThat(fresh.sent).isEmpty(); // nothing new: pin 9 is still in service
        int[] regs = fresh.registers();
        assertThat(regs).isEqualTo(old.registers());
        assertThat(regs[0]).isEqualTo(0x05000000);
        assertThat(regs[3 + 18] & (1 << 14)).isNotZero(); // pin 9's Remote IRR

        // the same following accesses on both: EOI re-delivers the still-asserted level pin,
        // unmasking pin 5 sends its pending edge, pin 4's edge goes out
        for (Rig rig : List.of(old, fresh)) {
            rig.sent.clear();
            rig.ioapic.endOfInterrupt(0x39);
            rig.program(5, 0x00000000_00000035L);
            rig.ioapic.line(4).pulse();
            rig.ioapic.line(9).set(true); // already high (the restored one kept the input level): no edge
        }
        List<Msi> expected = List.of(new Msi(0xfee02000L, 0x8039), new Msi(0xfee00000L, 0x35),
                new Msi(0xfee01000L, 0x24));
        assertThat(old.sent).isEqualTo(expected);
        assertThat(fresh.sent).isEqualTo(expected);
    }

    @Test
    void aFreshIoapicDiffersUntilRestored() {
        Rig fresh = new Rig();
        assertThat(fresh.registers()).isNotEqualTo(busy().registers());
        fresh.ioapic.line(4).pulse();
        assertThat(fresh.sent).isEmpty(); // masked by default: the restored one's delivery above is the state's doing
    }

    @Test
    void truncatedOrCorruptStateIsRefusedAndChangesNothing() {
        byte[] state = save(busy().ioapic);
        Rig fresh = new Rig();
        fresh.program(4, 0x00000000_00000044L);
        int[] before = fresh.registers();
        assertThatThrownBy(() -> restore(fresh.ioapic, Arrays.copyOf(state, state.length - 3)))
                .isInstanceOf(SnapshotException.class);
        byte[] badId = state.clone();
        badId[0] = 0x10; // IDs are four bits
        assertThatThrownBy(() -> restore(fresh.ioapic, badId)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("ID");
        byte[] badPins = state.clone();
        badPins[2] = 25; // table length
        assertThatThrownBy(() -> restore(fresh.ioapic, badPins)).isInstanceOf(SnapshotException.class);
        byte[] badIrr = state.clone();
        badIrr[2 + 4 + 8 * IoApic.PINS + 3] = 0x01; // IRR bit 24
        assertThatThrownBy(() -> restore(fresh.ioapic, badIrr)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("IRR");
        assertThat(fresh.registers()).isEqualTo(before);
        assertThat(fresh.routes).hasSize(1); // only the one from programming pin 4's low dword
        fresh.ioapic.line(4).pulse();
        assertThat(fresh.sent).containsExactly(new Msi(0xfee00000L, 0x44));
    }
}
