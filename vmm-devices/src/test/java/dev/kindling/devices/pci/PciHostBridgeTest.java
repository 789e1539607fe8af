package dev.kindling.devices.pci;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.device.Device;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

/** The bridge as a guest's configuration cycles and window accesses see it, with a recording function. */
class PciHostBridgeTest {
    private static final PciHostBridge.Window MMIO32 = new PciHostBridge.Window(0xc000_0000L, 0x1000_0000L);
    private static final PciHostBridge.Window MMIO64 = new PciHostBridge.Window(0x1_0000_0000L, 1L << 36);
    private static final PciHostBridge.Window IO = new PciHostBridge.Window(0xc000, 0x1000);

    private final PciHostBridge bridge = new PciHostBridge(MMIO32, MMIO64, IO);
    private final Device config = bridge.configPorts();

    /** A function with a register BAR0, an I/O BAR1, a 64-bit BAR2 of 1 MiB, INTA# and one 8-byte capability. */
    static final class Recorder implements PciFunction {
        final List<String> calls = new ArrayList<>();
        final int[] capability = new int[2];
        boolean closed;

        @Override
        public String name() {
            return "rec";
        }

        @Override
        public PciId id() {
            return new PciId(0x1af4, 0x1110, 0x05_00_00, 1, 0x1af4, 0x1100);
        }

        @Override
        public List<PciBar> bars() {
            return List.of(new PciBar(0, 256, PciBar.Kind.MEMORY32, false), new PciBar(1, 16, PciBar.Kind.IO, false),
                    new PciBar(2, 1 << 20, PciBar.Kind.MEMORY64, true));
        }

        @Override
        public int interruptPin() {
            return 1;
        }

        @Override
        public List<PciCapability> capabilities() {
            return List.of(new PciCapability() {
                @Override
                public int id() {
                    return 0x09;
                }

                @Override
                public int length() {
                    return 8;
                }

                @Override
                public long read(int offset, int size) {
                    calls.add("cap-read " + offset + " " + size);
                    return offset == 2 ? 0xbeef : 0x12345678;
                }

                @Override
                public void write(int offset, int size, long value) {
                    calls.add("cap-write " + offset + " " + size + " 0x" + Long.toHexString(value));
                }
            });
        }

        @Override
        public long readBar(int bar, long offset, int size) {
            calls.add("read " + bar + " 0x" + Long.toHexString(offset) + " " + size);
            return 0x42;
        }

        @Override
        public void writeBar(int bar, long offset, int size, long value) {
            calls.add("write " + bar + " 0x" + Long.toHexString(offset) + " " + size + " 0x" + Long.toHexString(value));
        }

        @Override
        public void barPlaced(int bar, OptionalLong address) {
            calls.add("placed " + bar + " " + (address.isPresent() ? "0x" + Long.toHexString(address.getAsLong()) : "-"));
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    private void select(int slot, int reg) {
        config.write(0, 4, 0x8000_0000L | slot << 11 | reg);
    }

    private long read(int slot, int reg, int size) {
        select(slot, reg & 0xfc);
        return config.read(4 + (reg & 3), size);
    }

    private void write(int slot, int reg, int size, long value) {
        select(slot, reg & 0xfc);
        config.write(4 + (reg & 3), size, value);
    }

    @Test
    void hostBridgeAtSlotZeroAndNothingElseWithoutFunctions() {
        assertThat(read(0, 0, 4)).isEqualTo(0x0008_1b36L);
        assertThat(read(0, 8, 4) >>> 8).as("class host bridge").isEqualTo(0x06_00_00);
        assertThat(read(0, 0x0e, 1)).as("header type 0").isZero();
        assertThat(read(1, 0, 4)).as("an empty slot").isEqualTo(0xffff_ffffL);
        config.write(0, 4, 0x8001_0000L); // bus 1
        assertThat(config.read(4, 4)).isEqualTo(0xffff_ffffL);
        config.write(0, 4, 0x0000_0000L); // enable bit off
        assertThat(config.read(4, 4)).isEqualTo(0xffff_ffffL);
        assertThat(config.read(0, 4)).as("the address register reads back").isZero();
    }

    @Test
    void linuxsMechanismOneProbeSucceeds() {
        // arch/x86/pci/direct.c pci_check_type1: a byte write to 0xcfb, then the address register must hold 0x80000000
        config.write(3, 1, 0x01);
        long saved = config.read(0, 4);
        config.write(0, 4, 0x8000_0000L);
        assertThat(config.read(0, 4)).isEqualTo(0x8000_0000L);
        config.write(0, 4, saved);
    }

    @Test
    void addPlacesBarsInTheirWindowsTurnsDecodingOnAndSaysSo() {
        Recorder f = new Recorder();
        assertThat(bridge.add(f)).isEqualTo(1);
        assertThat(f.calls).containsExactly("placed 0 0xc0000000", "placed 1 0xc000", "placed 2 0x100000000");
        assertThat(read(1, 0, 4)).isEqualTo(0x1110_1af4L);
        assertThat(read(1, 4, 2)).as("memory and I/O decode").isEqualTo(3);
        assertThat(read(1, 6, 2) & 0x10).as("capability list").isEqualTo(0x10);
        assertThat(read(1, 0x10, 4)).isEqualTo(0xc000_0000L);
        assertThat(read(1, 0x14, 4)).isEqualTo(0xc001L);
        assertThat(read(1, 0x18, 4)).as("64-bit, prefetchable").isEqualTo(0x0000_000cL);
        assertThat(read(1, 0x1c, 4)).isEqualTo(1L);
        assertThat(read(1, 0x2c, 4)).isEqualTo(0x1100_1af4L);
        assertThat(read(1, 0x3c, 1)).as("interrupt line: the swizzled IOAPIC pin").isEqualTo(17);
        assertThat(read(1, 0x3d, 1)).as("INTA#").isEqualTo(1);
        assertThat(bridge.placements()).containsExactly(
                new PciHostBridge.Placement(1, "rec", 0, 0xc000_0000L, 256, PciBar.Kind.MEMORY32),
                new PciHostBridge.Placement(1, "rec", 1, 0xc000, 16, PciBar.Kind.IO),
                new PciHostBridge.Placement(1, "rec", 2, 0x1_0000_0000L, 1 << 20, PciBar.Kind.MEMORY64));
        Recorder g = new Recorder();
        assertThat(bridge.add(g)).isEqualTo(2);
        assertThat(bridge.placement(2, 0)).as("a page after the first function's").hasValue(0xc000_1000L);
        assertThat(bridge.placement(2, 2)).hasValue(0x1_0010_0000L);
        assertThat(read(2, 0x3c, 1)).isEqualTo(18);
    }

    @Test
    void barSizingAndAMoveWithDecodingOffAsLinuxDoesIt() {
        Recorder f = new Recorder();
        bridge.add(f);
        f.calls.clear();
        write(1, 4, 2, 0); // decoding off
        assertThat(f.calls).containsExactly("placed 0 -", "placed 1 -", "placed 2 -");
        f.calls.clear();
        write(1, 0x10, 4, 0xffff_ffffL);
        assertThat(read(1, 0x10, 4)).as("size 256").isEqualTo(0xffff_ff00L);
        write(1, 0x14, 4, 0xffff_ffffL);
        assertThat(read(1, 0x14, 4)).as("16 ports").isEqualTo(0xffff_fff1L);
        write(1, 0x18, 4, 0xffff_ffffL);
        write(1, 0x1c, 4, 0xffff_ffffL);
        assertThat(read(1, 0x18, 4)).isEqualTo(0xfff0_000cL);
        assertThat(read(1, 0x1c, 4)).isEqualTo(0xffff_ffffL);
        assertThat(read(1, 0x30, 4)).as("no expansion ROM").isZero();
        // New places, then decoding on: the function hears only the final ones.
        write(1, 0x10, 4, 0xc100_0000L);
        write(1, 0x14, 4, 0xc100);
        write(1, 0x18, 4, 0xc800_0000L);
        write(1, 0x1c, 4, 0);
        assertThat(f.calls).isEmpty();
        write(1, 4, 2, 3);
        assertThat(f.calls).containsExactly("placed 0 0xc1000000", "placed 1 0xc100", "placed 2 0xc8000000");
        assertThat(bridge.placement(1, 2)).as("a 64-bit BAR may live below 4 GiB").hasValue(0xc800_0000L);
    }

    @Test
    void windowAccessesReachTheRegisterBarThatHoldsThem() {
        Recorder f = new Recorder();
        bridge.add(f);
        f.calls.clear();
        Device mmio = bridge.mmioWindow(), io = bridge.ioWindow();
        assertThat(mmio.read(0x10, 4)).isEqualTo(0x42);
        mmio.write(0xfc, 4, 7);
        assertThat(mmio.read(0xfe, 4)).as("straddles the BAR's end").isEqualTo(0xffff_ffffL);
        assertThat(mmio.read(0x2000, 4)).as("no BAR there").isEqualTo(0xffff_ffffL);
        assertThat(io.read(4, 2)).isEqualTo(0x42);
        assertThat(f.calls).containsExactly("read 0 0x10 4", "write 0 0xfc 4 0x7", "read 1 0x4 2");
        write(1, 4, 2, 1); // memory decoding off, I/O on
        f.calls.clear();
        assertThat(mmio.read(0x10, 4)).isEqualTo(0xffff_ffffL);
        assertThat(io.read(4, 2)).isEqualTo(0x42);
        assertThat(f.calls).containsExactly("read 1 0x4 2");
    }

    @Test
    void aBarMovedOutOfTheWindowsStopsDecoding() {
        Recorder f = new Recorder();
        bridge.add(f);
        f.calls.clear();
        write(1, 0x10, 4, 0x8000_0000L); // RAM's place, not a window
        assertThat(f.calls).containsExactly("placed 0 -");
        assertThat(bridge.placement(1, 0)).isEmpty();
        assertThat(bridge.mmioWindow().read(0, 4)).isEqualTo(0xffff_ffffL);
    }

    @Test
    void capabilitiesAreChainedFrom0x40WithTheirHeaderKeptByTheBridge() {
        Recorder f = new Recorder();
        bridge.add(f);
        f.calls.clear();
        assertThat(read(1, 0x34, 1)).isEqualTo(0x40);
        assertThat(read(1, 0x40, 4)).as("id 9, last, then the capability's bytes 2-3").isEqualTo(0xbeef_0009L);
        assertThat(read(1, 0x44, 4)).isEqualTo(0x1234_5678L);
        write(1, 0x40, 4, 0xaaaa_ffffL); // id and next are read-only
        write(1, 0x46, 2, 0x1234);
        assertThat(f.calls).containsExactly("cap-read 2 2", "cap-read 4 4", "cap-write 2 2 0xaaaa", "cap-write 6 2 0x1234");
        assertThat(read(1, 0x48, 4)).as("past the list").isZero();
    }

    @Test
    void writableHeaderFieldsAndReadOnlyOnes() {
        bridge.add(new Recorder());
        write(1, 0, 4, 0x1234_5678L);
        assertThat(read(1, 0, 4)).isEqualTo(0x1110_1af4L);
        write(1, 0x0c, 1, 0x10);
        assertThat(read(1, 0x0c, 1)).as("cache line size").isEqualTo(0x10);
        write(1, 0x3c, 1, 0x0b);
        assertThat(read(1, 0x3c, 2)).isEqualTo(0x010b);
        write(1, 4, 2, 0xffff);
        assertThat(read(1, 4, 2)).as("only IO, memory, master and INTx-disable are writable").isEqualTo(0x0407);
    }

    @Test
    void addFailsWithoutChangingAnythingWhenABarDoesNotFit() {
        PciHostBridge small = new PciHostBridge(MMIO32, new PciHostBridge.Window(0x1_0000_0000L, 1 << 19), IO);
        Recorder f = new Recorder();
        assertThatThrownBy(() -> small.add(f)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("rec: BAR2 of 1048576 bytes does not fit");
        assertThat(f.calls).isEmpty();
        assertThat(small.nextSlot()).isEqualTo(1);
        assertThat(small.placements()).isEmpty();
    }

    @Test
    void fullBusAndBadWindowsAreNamed() {
        for (int i = 1; i < PciHostBridge.SLOTS; i++) {
            bridge.add(new Recorder());
        }
        assertThat(bridge.nextSlot()).isEqualTo(-1);
        assertThatThrownBy(() -> bridge.add(new Recorder())).hasMessageContaining("all 31 PCI slots are taken");
        assertThatThrownBy(() -> new PciHostBridge(new PciHostBridge.Window(0xc000_0800L, 0x1000), MMIO64, IO))
                .hasMessageContaining("not 4 KiB aligned");
        assertThatThrownBy(() -> new PciHostBridge(new PciHostBridge.Window(0xf000_0000L, 0x2000_0000L), MMIO64, IO))
                .hasMessageContaining("above 4 GiB");
    }

    @Test
    void intxSwizzle() {
        assertThat(PciHostBridge.intxPin(0, 1)).isEqualTo(16);
        assertThat(PciHostBridge.intxPin(1, 1)).isEqualTo(17);
        assertThat(PciHostBridge.intxPin(3, 2)).isEqualTo(16);
        assertThat(PciHostBridge.intxPin(31, 4)).isEqualTo(18);
        assertThatThrownBy(() -> PciHostBridge.intxPin(1, 0)).isInstanceOf(IllegalArgumentException.class);
    }

    /** An interrupt pin that records each change of its level. */
    static final class PinRecorder implements dev.kindling.irq.IrqLine {
        final List<Boolean> levels = new ArrayList<>();

        @Override
        public int gsi() {
            return 17;
        }

        @Override
        public void pulse() {
            levels.add(true);
            levels.add(false);
        }

        @Override
        public void set(boolean level) {
            levels.add(level);
        }
    }

    @Test
    void interruptDisableGatesTheLineAndStatusShowsTheFunctionsLevel() {
        PinRecorder line = new PinRecorder();
        PciIntx intx = new PciIntx(new PciIntx.Pin(line));
        bridge.add(new Recorder(), intx);
        intx.set(true);
        assertThat(line.levels).containsExactly(true);
        assertThat(read(1, 6, 2) & 0x08).as("Interrupt Status").isEqualTo(0x08);

        // Linux's pci_check_and_mask_intx: sets Interrupt Disable while the function asserts
        write(1, 4, 2, read(1, 4, 2) | 0x400);
        assertThat(line.levels).containsExactly(true, false);
        assertThat(read(1, 6, 2) & 0x08).as("status still shows the function's level").isEqualTo(0x08);
        intx.set(false);
        intx.set(true);
        assertThat(line.levels).as("nothing reaches the pin while disabled").containsExactly(true, false);
        write(1, 4, 2, read(1, 4, 2) & ~0x400);
        assertThat(line.levels).as("enabling again shows the pending level").containsExactly(true, false, true);
        intx.set(false);
        assertThat(line.levels).containsExactly(true, false, true, false);
        assertThat(read(1, 6, 2) & 0x08).isZero();
    }

    @Test
    void functionsSharingAPinAreWiredOr() {
        PinRecorder line = new PinRecorder();
        PciIntx.Pin pin = new PciIntx.Pin(line);
        PciIntx a = new PciIntx(pin), b = new PciIntx(pin);
        a.set(true);
        b.set(true);
        a.set(false);
        assertThat(line.levels).as("b still asserts").containsExactly(true);
        a.set(false);
        b.set(false);
        assertThat(line.levels).containsExactly(true, false);
        assertThat(a.gsi()).isEqualTo(17);
    }

    @Test
    void closeClosesTheFunctionsOnce() {
        Recorder f = new Recorder();
        bridge.add(f);
        bridge.close();
        assertThat(f.closed).isTrue();
        assertThat(bridge.mmioWindow().read(0, 4)).as("nothing decodes after close").isEqualTo(0xffff_ffffL);
        bridge.close();
        assertThatThrownBy(() -> bridge.add(new Recorder())).isInstanceOf(IllegalStateException.class);
    }
}
