package dev.kindling.boot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.memory.GuestMemory;
import org.junit.jupiter.api.Test;

class BootCpuStateTest {
    private static final long MIB = 1L << 20;

    @Test
    void gdtDescriptorsHaveTheUsualEncodings() {
        assertThat(BootGdt.entry(0)).isZero();
        assertThat(BootGdt.entry(BootGdt.CODE32_SELECTOR)).isEqualTo(0x00cf_9b00_0000_ffffL);
        assertThat(BootGdt.entry(BootGdt.CODE64_SELECTOR)).isEqualTo(0x00af_9b00_0000_ffffL);
        assertThat(BootGdt.entry(BootGdt.DATA_SELECTOR)).isEqualTo(0x00cf_9300_0000_ffffL);
        assertThat(BootGdt.entry(BootGdt.TSS_SELECTOR)).isEqualTo(0x0000_8b00_0000_0067L);
    }

    @Test
    void decodeRoundTrips() {
        long d = BootGdt.descriptor(0x409a, 0x1234_5678L, 0xabcde);
        BootCpuState.Segment s = BootGdt.decode(d, 0x28);
        assertThat(s.base()).isEqualTo(0x1234_5678L);
        assertThat(s.limit()).isEqualTo(0xabcde);
        assertThat(s.type()).isEqualTo(0xa);
        assertThat(s.db()).isTrue();
        assertThat(s.g()).isFalse();
        assertThat(s.present()).isTrue();
        assertThat(s.s()).isTrue();
        assertThat(s.selector()).isEqualTo(0x28);
    }

    @Test
    void longModeState() {
        BootCpuState c = BootCpuState.longMode64(0x100200, 0x5000, 0x9000);
        BootCpuState.Segment cs = c.cs();
        assertThat(cs).isEqualTo(new BootCpuState.Segment(0, 0xffffffffL, 0x10, 0xb, true, 0, false, true, true, true, false, false));
        assertThat(c.ds()).isEqualTo(new BootCpuState.Segment(0, 0xffffffffL, 0x18, 0x3, true, 0, true, true, false, true, false, false));
        assertThat(c.es()).isEqualTo(c.ds());
        assertThat(c.fs()).isEqualTo(c.ds());
        assertThat(c.gs()).isEqualTo(c.ds());
        assertThat(c.ss()).isEqualTo(c.ds());
        assertThat(c.tr()).isEqualTo(new BootCpuState.Segment(0, 0x67, 0x20, 0xb, true, 0, false, false, false, false, false, false));
        assertThat(c.ldt().type()).isEqualTo(2);
        assertThat(c.cr0()).isEqualTo(0x8000_0011L);
        assertThat(c.cr4()).isEqualTo(0x20);
        assertThat(c.efer()).isEqualTo(0x500);
        assertThat(c.idt()).isEqualTo(new BootCpuState.DescriptorTable(0x540, 7));
        assertThat(c.regs()).isEqualTo(new BootCpuState.Registers(0, 0, 0, 0, 0x5000, 0, 0x8ff0, 0, 0x100200, 2));
        assertThat(c.withRegs(c.regs().withRip(5)).regs().rip()).isEqualTo(5);
    }

    @Test
    void protectedModeState() {
        BootCpuState c = BootCpuState.protectedMode32(0x1000000, 0x6000);
        assertThat(c.cs()).isEqualTo(new BootCpuState.Segment(0, 0xffffffffL, 0x08, 0xb, true, 0, true, true, false, true, false, false));
        assertThat(c.cr0()).isEqualTo(0x11);
        assertThat(c.cr3()).isZero();
        assertThat(c.cr4()).isZero();
        assertThat(c.efer()).isZero();
        assertThat(c.regs().rbx()).isEqualTo(0x6000);
        assertThat(c.regs().rip()).isEqualTo(0x1000000);
        assertThatThrownBy(() -> BootCpuState.protectedMode32(0x1_0000_0000L, 0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> BootCpuState.longMode64(0, 0, 0x9001)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void flatBinaryIn32BitProtectedMode() {
        try (GuestMemory mem = MicrovmLayout.anonymousMemory(4 * MIB)) {
            byte[] code = {(byte) 0xf4}; // hlt
            BootCpuState c = FlatBinaryLoader.protectedMode32(mem, code, 0x100000);
            assertThat(mem.read8(0x100000)).isEqualTo((byte) 0xf4);
            assertThat(c.regs().rip()).isEqualTo(0x100000);
            assertThat(c.longMode()).isFalse();
            assertThat(mem.read64(0x500 + 0x08)).isEqualTo(BootGdt.entry(0x08));
            assertThat(mem.read64(0x500 + 0x18)).isEqualTo(BootGdt.entry(0x18));
        }
    }

    @Test
    void flatBinaryInLongModeMapsAll4GiB() {
        try (GuestMemory mem = MicrovmLayout.anonymousMemory(4 * MIB)) {
            BootCpuState c = FlatBinaryLoader.longMode64(mem, new byte[] {(byte) 0xf4}, 0x100000);
            assertThat(c.longMode()).isTrue();
            assertThat(c.cr3()).isEqualTo(0x9000);
            for (int g = 0; g < 4; g++) {
                assertThat(mem.read64(0xa000 + 8L * g)).isEqualTo(0xb003L + 0x1000L * g);
            }
            assertThat(mem.read64(0xa000 + 8L * 4)).isZero();
            // the PDE for the IOAPIC's 2 MiB page
            assertThat(mem.read64(0xe000 + 8L * 0x1f6)).isEqualTo(0xfec0_0083L);
            assertThat(mem.read64(0xe000 + 8L * 511)).isEqualTo(0xffe0_0083L);
        }
    }

    @Test
    void flatBinaryMustNotHitBootStructures() {
        try (GuestMemory mem = MicrovmLayout.anonymousMemory(4 * MIB)) {
            assertThatThrownBy(() -> FlatBinaryLoader.protectedMode32(mem, new byte[0x100], 0x8f80))
                    .isInstanceOf(BootException.class).hasMessageContaining("boot stack");
            assertThatThrownBy(() -> new FlatBinaryLoader(0x3ff000).load(mem, new byte[0x2000]))
                    .isInstanceOf(BootException.class).hasMessageContaining("outside guest RAM");
            LoadedKernel k = new FlatBinaryLoader(0x200000).load(mem, new byte[] {1, 2, 3});
            assertThat(k.kind()).isEqualTo(LoadedKernel.Kind.FLAT);
            assertThat(k.entry()).isEqualTo(0x200000);
            assertThat(k.kernelEnd()).isEqualTo(0x200003);
        }
    }
}
