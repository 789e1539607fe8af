package dev.kindling.devices.legacy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.irq.IrqLine;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class HelpersTest {
    @Test
    void bcd() {
        assertThat(LegacyIo.toBcd(59)).isEqualTo(0x59);
        assertThat(LegacyIo.toBcd(7)).isEqualTo(0x07);
        assertThat(LegacyIo.toBcd(123)).isEqualTo(0x23);
        assertThat(LegacyIo.fromBcd(0x42)).isEqualTo(42);
        assertThat(LegacyIo.fromBcd(0x1a)).isEqualTo(20); // nibbles above 9 at face value
    }

    @Test
    void scalingDoesNotOverflow() {
        long tenYears = 10L * 365 * 86_400 * 1_000_000_000L;
        assertThat(LegacyIo.scale(tenYears, 1_193_182, 1_000_000_000L)).isEqualTo(10L * 365 * 86_400 * 1_193_182);
        assertThat(LegacyIo.scale(999, 1_193_182, 1_000_000_000L)).isEqualTo(1); // 1.19 ticks
        assertThat(LegacyIo.scaleCeil(1, 1_000_000_000L, 1_193_182)).isEqualTo(839);
        assertThat(LegacyIo.scale(839, 1_193_182, 1_000_000_000L)).isEqualTo(1);
        assertThat(LegacyIo.scale(838, 1_193_182, 1_000_000_000L)).isZero();
    }

    @Test
    void unclaimedReadsAreAllOnes() {
        assertThat(LegacyIo.unclaimed(1)).isEqualTo(0xff);
        assertThat(LegacyIo.unclaimed(4)).isEqualTo(0xffffffffL);
        assertThat(LegacyIo.unclaimed(8)).isEqualTo(-1L);
        assertThat(LegacyIo.unclaimed(0)).isZero();
        assertThat(LegacyIo.byteAccess(7, 1, 8)).isTrue();
        assertThat(LegacyIo.byteAccess(8, 1, 8)).isFalse();
        assertThat(LegacyIo.byteAccess(0, 2, 8)).isFalse();
    }

    @Test
    void byteRingGrowsUpToItsLimit() {
        ByteRing ring = new ByteRing(2, 5);
        for (int i = 0; i < 5; i++) {
            assertThat(ring.push(i)).isTrue();
        }
        assertThat(ring.push(9)).isFalse();
        assertThat(ring.room()).isZero();
        assertThat(ring.pop()).isEqualTo(0);
        assertThat(ring.push(5)).isTrue();
        byte[] out = new byte[8];
        assertThat(ring.pop(out, 0, 8)).isEqualTo(5);
        assertThat(out).startsWith(1, 2, 3, 4, 5);
        assertThat(ring.pop()).isEqualTo(-1);
    }

    @Test
    void fanOutDrivesEveryLine() {
        RecordingLine a = new RecordingLine(0);
        RecordingLine b = new RecordingLine(2);
        IrqLine both = IrqLines.fanOut(0, a, b);
        assertThat(both.gsi()).isZero();
        both.set(true);
        both.pulse();
        assertThat(a.events()).containsExactly("1", "P");
        assertThat(b.events()).containsExactly("1", "P");
        IrqLine none = IrqLines.none(3);
        none.pulse();
        assertThat(none.gsi()).isEqualTo(3);
    }

    @Test
    void picAndIoApicWiredTogetherAsOnAPc() {
        List<Long> msis = new ArrayList<>();
        List<Boolean> intr = new ArrayList<>();
        try (Pic8259 pic = new Pic8259(intr::add);
                IoApic ioapic = new IoApic((address, data) -> msis.add(address << 32 | data))) {
            IrqLine com1 = IrqLines.fanOut(4, pic.line(4), ioapic.line(4));
            ioapic.write(0x00, 4, 0x18);
            ioapic.write(0x10, 4, 0x24); // pin 4: edge, vector 0x24, unmasked
            pic.master().write(1, 1, 0xef); // PIC: only IRQ 4 unmasked (not initialised: vectors 0-7)
            com1.set(true);
            assertThat(msis).containsExactly(0xfee00000L << 32 | 0x24);
            assertThat(intr).containsExactly(true);
            assertThat(pic.acknowledge()).isEqualTo(4);
        }
    }
}
