package dev.kindling.boot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.memory.GuestMemory;
import java.util.Arrays;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class BzImageLoaderTest {
    private static final long MIB = 1L << 20;

    private GuestMemory mem;

    @BeforeEach
    void memory() {
        mem = MicrovmLayout.anonymousMemory(64 * MIB);
    }

    @AfterEach
    void close() {
        mem.close();
    }

    @Test
    void loadsProtectedModeKernelAtOneMiB() {
        byte[] payload = Fixtures.pattern(0x3000, 5);
        byte[] image = Fixtures.bzImage(payload);
        assertThat(BzImageLoader.isBzImage(image)).isTrue();
        LoadedKernel k = KernelLoader.forImage(image).load(mem, image);

        assertThat(k.kind()).isEqualTo(LoadedKernel.Kind.BZIMAGE);
        assertThat(k.entry()).isEqualTo(0x100200);
        assertThat(k.loadAddress()).isEqualTo(0x100000);
        assertThat(k.segments()).containsExactly(new AddressRange(0x100000, 0x3000));
        // relocatable: runs at max(1 MiB aligned to 2 MiB, pref_address 16 MiB) and needs init_size (16 MiB) there
        assertThat(k.kernelEnd()).isEqualTo(Fixtures.BZ_PREF_ADDRESS + Fixtures.BZ_INIT_SIZE);
        assertThat(mem.read(0x100000, payload.length)).isEqualTo(payload);

        SetupHeader h = k.setupHeader().orElseThrow();
        assertThat(h.version()).isEqualTo(0x020f);
        assertThat(h.versionString()).isEqualTo("2.15");
        assertThat(h.setupSects()).isEqualTo(27);
        assertThat(h.length()).isEqualTo(0x26c - 0x1f1);
        assertThat(h.bytes()).isEqualTo(Arrays.copyOfRange(image, 0x1f1, 0x26c));
        assertThat(h.cmdlineSize()).isEqualTo(2047);
        assertThat(h.initrdAddrMax()).isEqualTo(0x7fffffff);
        assertThat(h.xloadflags() & SetupHeader.XLF_KERNEL_64).isNotZero();
    }

    @Test
    void setupSectsZeroMeansFour() {
        byte[] payload = Fixtures.pattern(0x1000, 2);
        byte[] image = Fixtures.bzImage(0x020f, 0, payload, b -> { });
        assertThat(image.length).isEqualTo(5 * 512 + payload.length);
        new BzImageLoader().load(mem, image);
        assertThat(mem.read(0x100000, payload.length)).isEqualTo(payload);
    }

    @Test
    void oldestSupportedProtocol() {
        // 2.06: no pref_address / init_size, no xloadflags: the 64-bit entry is assumed
        byte[] image = Fixtures.bzImage(0x0206, 4, Fixtures.pattern(0x1000, 0), b -> { });
        LoadedKernel k = new BzImageLoader().inspect(mem, image);
        assertThat(k.kernelEnd()).isEqualTo(0x101000);
        assertThat(k.setupHeader().orElseThrow().cmdlineSize()).isEqualTo(2047);
    }

    @Test
    void badBootFlag() {
        byte[] image = Fixtures.bzImage(0x020f, 4, Fixtures.pattern(0x1000, 0), b -> b.putShort(0x1fe, (short) 0x1234));
        assertThat(BzImageLoader.isBzImage(image)).isFalse();
        assertThatThrownBy(() -> KernelLoader.forImage(image)).isInstanceOf(BootException.class).hasMessageContaining("neither");
        assertThatThrownBy(() -> new BzImageLoader().inspect(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("boot flag");
    }

    @Test
    void badHeaderMagic() {
        byte[] image = Fixtures.bzImage(0x020f, 4, Fixtures.pattern(0x1000, 0), b -> b.putInt(0x202, 0x53726449));
        assertThatThrownBy(() -> new BzImageLoader().inspect(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("HdrS");
    }

    @Test
    void oldProtocol205() {
        byte[] image = Fixtures.bzImage(0x0205, 4, Fixtures.pattern(0x1000, 0), b -> { });
        assertThatThrownBy(() -> new BzImageLoader().load(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("unsupported boot protocol 2.05");
        assertThat(mem.read32(0x100000)).isZero();
    }

    @Test
    void noSixtyFourBitEntry() {
        byte[] image = Fixtures.bzImage(0x020c, 4, Fixtures.pattern(0x1000, 0), b -> b.putShort(0x236, (short) 0));
        assertThatThrownBy(() -> new BzImageLoader().inspect(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("XLF_KERNEL_64");
    }

    @Test
    void zImageIsRejected() {
        byte[] image = Fixtures.bzImage(0x020f, 4, Fixtures.pattern(0x1000, 0), b -> b.put(0x211, (byte) 0));
        assertThatThrownBy(() -> new BzImageLoader().inspect(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("zImage");
    }

    @Test
    void truncated() {
        byte[] image = Fixtures.bzImage(Fixtures.pattern(0x3000, 0));
        assertThatThrownBy(() -> new BzImageLoader().inspect(mem, Arrays.copyOf(image, 0x210)))
                .isInstanceOf(BootException.class).hasMessageContaining("truncated");
        assertThatThrownBy(() -> new BzImageLoader().inspect(mem, Arrays.copyOf(image, 0x250)))
                .isInstanceOf(BootException.class).hasMessageContaining("setup header ends");
        assertThatThrownBy(() -> new BzImageLoader().inspect(mem, Arrays.copyOf(image, 28 * 512)))
                .isInstanceOf(BootException.class).hasMessageContaining("setup code");
        assertThatThrownBy(() -> new BzImageLoader().inspect(mem, Arrays.copyOf(image, image.length - 0x100)))
                .isInstanceOf(BootException.class).hasMessageContaining("syssize");
    }

    @Test
    void decompressionAreaMustBeRam() {
        try (GuestMemory small = MicrovmLayout.anonymousMemory(24 * MIB)) {
            byte[] image = Fixtures.bzImage(Fixtures.pattern(0x1000, 0));
            assertThatThrownBy(() -> new BzImageLoader().load(small, image)).isInstanceOf(BootException.class)
                    .hasMessageContaining("init_size").hasMessageContaining("outside guest RAM");
            assertThat(small.read32(0x100000)).isZero();
        }
    }
}
