package dev.kindling.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.device.Device;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class BusTest {
    /** Records accesses; reads return offset + size. */
    static final class Probe implements Device {
        final String name;
        final List<String> log = new ArrayList<>();

        Probe(String name) {
            this.name = name;
        }

        public String name() {
            return name;
        }

        public long read(long offset, int size) {
            log.add("r" + offset + "/" + size);
            return offset + size;
        }

        public void write(long offset, int size, long value) {
            log.add("w" + offset + "/" + size + "=" + value);
        }
    }

    @Test
    void dispatchesToTheDeviceWithTheOffsetInItsRange() {
        Bus bus = new Bus("pio");
        Probe a = new Probe("a");
        Probe b = new Probe("b");
        bus.register(0x3f8, 8, a);
        bus.register(0x60, 1, b);
        assertThat(bus.read(0x3fd, 1)).isEqualTo(6);
        assertThat(bus.write(0x60, 1, 0xfe)).isTrue();
        assertThat(a.log).containsExactly("r5/1");
        assertThat(b.log).containsExactly("w0/1=254");
    }

    @Test
    void emptyAddressesReadAllOnesAndDropWrites() {
        Bus bus = new Bus("mmio");
        bus.register(0x1000, 0x100, new Probe("p"));
        assertThat(bus.read(0x1100, 4)).isEqualTo(0xffffffffL);
        assertThat(bus.read(0xfff, 1)).isEqualTo(0xffL);
        assertThat(bus.read(0, 8)).isEqualTo(-1L);
        assertThat(bus.write(0x2000, 4, 1)).isFalse();
    }

    @Test
    void overlappingRangesAreRejectedWithBothNamed() {
        Bus bus = new Bus("pio");
        bus.register(0x40, 4, new Probe("pit"));
        assertThatThrownBy(() -> bus.register(0x43, 2, new Probe("other")))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("pit").hasMessageContaining("other");
        bus.register(0x44, 1, new Probe("adjacent"));
        assertThat(bus.ranges()).extracting(BusRange::base).containsExactly(0x40L, 0x44L);
    }

    @Test
    void badRangesAreRejected() {
        Bus bus = new Bus("mmio");
        assertThatThrownBy(() -> bus.register(0, 0, new Probe("zero"))).hasMessageContaining("positive length");
        assertThatThrownBy(() -> bus.register(Long.MAX_VALUE, 2, new Probe("wrap"))).hasMessageContaining("overflows");
    }

    @Test
    void findsTheRightDeviceAmongMany() {
        Bus bus = new Bus("mmio");
        List<Probe> probes = new ArrayList<>();
        for (int i = 999; i >= 0; i--) {
            Probe p = new Probe("d" + i);
            probes.add(p);
            bus.register(0xd0000000L + i * 0x200L, 0x200, p);
        }
        for (int i = 0; i < 1000; i++) {
            assertThat(bus.find(0xd0000000L + i * 0x200L + 0x1ff).device().name()).isEqualTo("d" + i);
        }
        assertThat(bus.find(0xd0000000L + 1000 * 0x200L)).isNull();
        assertThat(bus.find(0xcfffffffL)).isNull();
        assertThat(bus.unregister(0xd0000000L)).isTrue();
        assertThat(bus.find(0xd0000000L)).isNull();
    }
}
