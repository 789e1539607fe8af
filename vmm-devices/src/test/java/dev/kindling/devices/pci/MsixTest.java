package dev.kindling.devices.pci;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.irq.MsiVector;
import dev.kindling.sys.EventFd;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** MSI-X's table, PBA and capability against fake vectors that keep pending triggers while masked, as PCI requires. */
class MsixTest {
    static final class FakeVector implements MsiVector {
        long address;
        int data;
        boolean masked, pending, closed;
        final List<String> delivered = new ArrayList<>();

        @Override
        public void configure(long address, int data) {
            this.address = address;
            this.data = data;
        }

        @Override
        public void setMasked(boolean masked) {
            this.masked = masked;
            if (!masked && pending) {
                pending = false;
                delivered.add("0x" + Long.toHexString(address) + "/" + data);
            }
        }

        @Override
        public boolean masked() {
            return masked;
        }

        @Override
        public boolean pending() {
            return pending;
        }

        @Override
        public void trigger() {
            if (masked) {
                pending = true;
            } else {
                delivered.add("0x" + Long.toHexString(address) + "/" + data);
            }
        }

        @Override
        public EventFd irqfd() {
            throw new UnsupportedOperationException();
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    private final List<FakeVector> made = new ArrayList<>();
    private final Msix msix = new Msix(3, 1, 0, 0x800, i -> {
        FakeVector v = new FakeVector();
        made.add(v);
        return v;
    });
    private final PciCapability cap = msix.capability();

    private void program(int i, long address, int data, boolean masked) {
        msix.write(i * 16L, 4, address & 0xffff_ffffL);
        msix.write(i * 16L + 4, 4, address >>> 32);
        msix.write(i * 16L + 8, 4, data);
        msix.write(i * 16L + 12, 4, masked ? 1 : 0);
    }

    @Test
    void capabilityDescribesTableAndPba() {
        assertThat(cap.id()).isEqualTo(0x11);
        assertThat(cap.length()).isEqualTo(12);
        assertThat(cap.read(2, 2)).as("table size N-1, off").isEqualTo(2);
        assertThat(cap.read(4, 4)).as("table at 0 in BAR1").isEqualTo(1);
        assertThat(cap.read(8, 4)).as("PBA at 0x800 in BAR1").isEqualTo(0x801);
        assertThat(msix.barBytes()).isEqualTo(4096);
    }

    @Test
    void triggersAreDroppedWhileOffHeldWhileMaskedAndDeliveredOnUnmask() {
        assertThat(made).allMatch(FakeVector::masked);
        program(0, 0xfee0_0000L, 0x41, false);
        msix.trigger(0);
        assertThat(made.get(0).delivered).as("MSI-X off").isEmpty();
        assertThat(made.get(0).masked()).isTrue();

        cap.write(2, 2, 0x8000 | 0x4000); // enable, function mask
        assertThat(msix.enabled()).isTrue();
        msix.trigger(0);
        assertThat(made.get(0).delivered).isEmpty();
        assertThat(msix.read(0x800, 4)).as("PBA bit 0").isEqualTo(1);
        cap.write(3, 1, 0x80); // function mask off
        assertThat(made.get(0).delivered).containsExactly("0xfee00000/65");
        assertThat(msix.read(0x800, 8)).isZero();

        msix.trigger(0);
        msix.trigger(1); // entry 1 still masked
        assertThat(made.get(0).delivered).hasSize(2);
        assertThat(made.get(1).pending()).isTrue();
        assertThat(msix.read(0x800, 4)).isEqualTo(2);
        program(1, 0xfee0_1000L, 0x42, false);
        assertThat(made.get(1).delivered).containsExactly("0xfee01000/66");
        msix.trigger(7); // out of range: nothing
        assertThat(made).allMatch(v -> v.delivered.size() <= 2);
    }

    @Test
    void tableReadsBackWithEightByteAccessesAndIgnoresOddOnes() {
        msix.write(16, 8, 0x0000_0001_fee0_0004L | 3); // low address bits 1:0 are reserved
        assertThat(msix.read(16, 8)).isEqualTo(0x0000_0001_fee0_0004L);
        assertThat(msix.read(28, 4)).as("masked after creation").isEqualTo(1);
        msix.write(24, 2, 0x1234);
        assertThat(msix.read(24, 4)).as("a 2-byte write is ignored").isZero();
        assertThat(msix.read(25, 4)).as("misaligned").isEqualTo(0xffff_ffffL);
        msix.write(0x800, 4, 0xffff_ffffL);
        assertThat(msix.read(0x800, 4)).as("the PBA is read-only").isZero();
        assertThat(msix.read(0x400, 4)).as("between table and PBA").isZero();
    }

    @Test
    void resetAndClose() {
        program(2, 0xfee0_0000L, 0x43, false);
        cap.write(2, 2, 0x8000);
        msix.reset();
        assertThat(msix.enabled()).isFalse();
        assertThat(msix.read(2 * 16 + 12, 4)).isEqualTo(1);
        assertThat(made.get(2).masked()).isTrue();
        msix.close();
        assertThat(made).allMatch(v -> v.closed);
        msix.trigger(0);
        assertThat(made.get(0).delivered).isEmpty();
    }

    @Test
    void badLayoutsAreNamed() {
        assertThatThrownBy(() -> new Msix(0, 1, 0, 0x800, i -> new FakeVector())).hasMessageContaining("vectors 0");
        assertThatThrownBy(() -> new Msix(4, 1, 0, 0x20, i -> new FakeVector())).hasMessageContaining("overlap");
        assertThatThrownBy(() -> new Msix(1, 6, 0, 0x800, i -> new FakeVector())).hasMessageContaining("BAR 6");
    }
}
