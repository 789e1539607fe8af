package dev.kindling.boot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.boot.Fixtures.Seg;
import dev.kindling.memory.GuestMemory;
import dev.kindling.testing.Require;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ElfLoaderTest {
    private static final long MIB = 1L << 20;
    private static final long KERNEL = 0x100_0000; // 16 MiB, where vmlinux loads

    private GuestMemory mem;

    @BeforeEach
    void memory() {
        mem = MicrovmLayout.anonymousMemory(64 * MIB);
    }

    @AfterEach
    void close() {
        mem.close();
    }

    private boolean allZero(long gpa, int length) {
        byte[] b = mem.read(gpa, length);
        for (byte x : b) {
            if (x != 0) {
                return false;
            }
        }
        return true;
    }

    @Test
    void loadsElf64SegmentsAndFindsPvhNote() {
        byte[] text = Fixtures.pattern(0x1234, 1);
        byte[] data = Fixtures.pattern(0x100, 7);
        byte[] image = Fixtures.elf(true, KERNEL, List.of(new Seg(KERNEL, text), new Seg(KERNEL + 0x200000, data, 0x5000)),
                List.of(Fixtures.note("GNU", 3, new byte[20]), Fixtures.pvhNote64(KERNEL + 0x40)));
        mem.slice(KERNEL + 0x200000, 0x5000).fill((byte) 0xff); // the bss must come out zero

        LoadedKernel k = KernelLoader.forImage(image).load(mem, image);

        assertThat(k.kind()).isEqualTo(LoadedKernel.Kind.ELF_PVH);
        assertThat(k.entry()).isEqualTo(KERNEL);
        assertThat(k.pvhEntry()).hasValue(KERNEL + 0x40);
        assertThat(k.loadAddress()).isEqualTo(KERNEL);
        assertThat(k.kernelEnd()).isEqualTo(KERNEL + 0x205000);
        assertThat(k.segments()).containsExactly(new AddressRange(KERNEL, 0x1234), new AddressRange(KERNEL + 0x200000, 0x5000));
        assertThat(k.setupHeader()).isEmpty();
        assertThat(mem.read(KERNEL, text.length)).isEqualTo(text);
        assertThat(mem.read(KERNEL + 0x200000, data.length)).isEqualTo(data);
        assertThat(allZero(KERNEL + 0x200000 + data.length, 0x5000 - data.length)).isTrue();
    }

    @Test
    void loadsElf32WithFourBytePvhNote() {
        byte[] text = Fixtures.pattern(0x800, 3);
        byte[] image = Fixtures.elf(false, 0x200000, List.of(new Seg(0x200000, text)), List.of(Fixtures.pvhNote32(0x200010)));
        LoadedKernel k = new ElfLoader().load(mem, image);
        assertThat(k.kind()).isEqualTo(LoadedKernel.Kind.ELF_PVH);
        assertThat(k.pvhEntry()).hasValue(0x200010);
        assertThat(mem.read(0x200000, text.length)).isEqualTo(text);
    }

    @Test
    void elfWithoutNoteIsPlainElf() {
        byte[] image = Fixtures.elf(true, KERNEL + 0x10, List.of(new Seg(KERNEL, Fixtures.pattern(0x100, 0))), List.of());
        LoadedKernel k = new ElfLoader().inspect(mem, image);
        assertThat(k.kind()).isEqualTo(LoadedKernel.Kind.ELF);
        assertThat(k.pvhEntry()).isEmpty();
        assertThat(k.entry()).isEqualTo(KERNEL + 0x10);
        assertThat(allZero(KERNEL, 0x100)).as("inspect writes nothing").isTrue();
    }

    @Test
    void neitherFormat() {
        byte[] junk = Fixtures.pattern(4096, 9);
        assertThatThrownBy(() -> KernelLoader.forImage(junk)).isInstanceOf(BootException.class)
                .hasMessageContaining("neither ELF nor bzImage");
        assertThatThrownBy(() -> new ElfLoader().inspect(mem, junk)).isInstanceOf(BootException.class)
                .hasMessageContaining("bad magic");
    }

    @Test
    void truncatedImages() {
        byte[] image = Fixtures.elf(true, KERNEL, List.of(new Seg(KERNEL, Fixtures.pattern(0x1000, 0))), List.of());
        assertThatThrownBy(() -> new ElfLoader().inspect(mem, Arrays.copyOf(image, 40)))
                .isInstanceOf(BootException.class).hasMessageContaining("truncated");
        assertThatThrownBy(() -> new ElfLoader().inspect(mem, Arrays.copyOf(image, 80)))
                .isInstanceOf(BootException.class).hasMessageContaining("truncated").hasMessageContaining("program headers");
        assertThatThrownBy(() -> new ElfLoader().inspect(mem, Arrays.copyOf(image, image.length - 1)))
                .isInstanceOf(BootException.class).hasMessageContaining("truncated").hasMessageContaining("segment 0");
    }

    @Test
    void pvhNoteWithBadSize() {
        byte[] bad = Fixtures.note("Xen", 18, new byte[] {0x34, 0x12});
        byte[] image = Fixtures.elf(true, KERNEL, List.of(new Seg(KERNEL, Fixtures.pattern(0x100, 0))), List.of(bad));
        assertThatThrownBy(() -> new ElfLoader().load(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("2-byte descriptor");
        assertThat(allZero(KERNEL, 0x100)).isTrue();
    }

    @Test
    void pvhNoteAbove4GiB() {
        byte[] image = Fixtures.elf(true, KERNEL, List.of(new Seg(KERNEL, Fixtures.pattern(0x100, 0))),
                List.of(Fixtures.pvhNote64(0x1_0000_0000L)));
        assertThatThrownBy(() -> new ElfLoader().inspect(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("32-bit");
    }

    @Test
    void noteRunningPastItsSegment() {
        byte[] note = Fixtures.pvhNote64(KERNEL);
        note[4] = 100; // descsz 100
        byte[] image = Fixtures.elf(true, KERNEL, List.of(new Seg(KERNEL, Fixtures.pattern(0x100, 0))), List.of(note));
        assertThatThrownBy(() -> new ElfLoader().inspect(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("malformed");
    }

    @Test
    void segmentOutsideRamIsRejectedBeforeAnythingIsWritten() {
        byte[] image = Fixtures.elf(true, KERNEL, List.of(new Seg(KERNEL, Fixtures.pattern(0x100, 0)),
                new Seg(0x1000_0000L, Fixtures.pattern(0x100, 0))), List.of());
        assertThatThrownBy(() -> new ElfLoader().load(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("segment 1").hasMessageContaining("outside guest RAM");
        assertThat(allZero(KERNEL, 0x100)).as("segment 0 not written").isTrue();
    }

    @Test
    void segmentAcrossTheEndOfRam() {
        byte[] image = Fixtures.elf(true, 64 * MIB - 0x100, List.of(new Seg(64 * MIB - 0x100, Fixtures.pattern(0x200, 0))), List.of());
        assertThatThrownBy(() -> new ElfLoader().inspect(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("outside guest RAM");
    }

    @Test
    void segmentOverBootStructures() {
        byte[] image = Fixtures.elf(true, 0x7000, List.of(new Seg(0x7000, Fixtures.pattern(0x100, 0))), List.of());
        assertThatThrownBy(() -> new ElfLoader().inspect(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("PVH memory map");
        byte[] mp = Fixtures.elf(true, 0x9fc00, List.of(new Seg(0x9f000, Fixtures.pattern(0x2000, 0))), List.of());
        assertThatThrownBy(() -> new ElfLoader().inspect(mem, mp)).isInstanceOf(BootException.class)
                .hasMessageContaining("MP table");
    }

    @Test
    void entryOutsideSegmentsWithoutPvh() {
        byte[] image = Fixtures.elf(true, 0xffff_ffff_8100_0000L, List.of(new Seg(KERNEL, Fixtures.pattern(0x100, 0))), List.of());
        assertThatThrownBy(() -> new ElfLoader().inspect(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("entry point");
    }

    @Test
    void wrongMachineAndType() {
        byte[] image = Fixtures.elf(true, KERNEL, List.of(new Seg(KERNEL, Fixtures.pattern(0x100, 0))), List.of());
        byte[] arm = image.clone();
        arm[0x12] = (byte) 183; // EM_AARCH64
        assertThatThrownBy(() -> new ElfLoader().inspect(mem, arm)).isInstanceOf(BootException.class).hasMessageContaining("not x86");
        byte[] dyn = image.clone();
        dyn[0x10] = 3; // ET_DYN
        assertThatThrownBy(() -> new ElfLoader().inspect(mem, dyn)).isInstanceOf(BootException.class).hasMessageContaining("ET_EXEC");
        byte[] big = image.clone();
        big[5] = 2;
        assertThatThrownBy(() -> new ElfLoader().inspect(mem, big)).isInstanceOf(BootException.class).hasMessageContaining("little-endian");
    }

    // gcc-built fixtures: the same checks against real toolchain output

    @Test
    void gccElf64WithPvhNote(@TempDir Path dir) throws Exception {
        Require.that(Fixtures.gccAvailable(), "gcc not found: needed for the gcc-built ELF fixtures");
        byte[] image = Fixtures.gccPvhElf(dir, true, 8, 0x100000);
        mem.slice(0x101000, 0x3004).fill((byte) 0xff);
        LoadedKernel k = KernelLoader.forImage(image).load(mem, image);
        assertThat(k.kind()).isEqualTo(LoadedKernel.Kind.ELF_PVH);
        assertThat(k.entry()).isEqualTo(0x100000);
        assertThat(k.pvhEntry()).hasValue(0x100000 + Fixtures.GCC_PVH_ENTRY_OFFSET);
        assertThat(k.kernelEnd()).isEqualTo(0x101000 + 0x3004);
        assertThat(mem.read8(0x100000)).isEqualTo((byte) 0xf4); // hlt
        assertThat(mem.read32(0x101000)).isEqualTo(0xfeedf00d);
        assertThat(allZero(0x101004, 0x3000)).isTrue();
    }

    @Test
    void gccElf32WithPvhNote(@TempDir Path dir) throws Exception {
        Require.that(Fixtures.gccAvailable(), "gcc not found: needed for the gcc-built ELF fixtures");
        byte[] image = Fixtures.gccPvhElf(dir, false, 4, 0x200000);
        assertThat(image[4]).isEqualTo((byte) 1); // ELFCLASS32
        LoadedKernel k = new ElfLoader().load(mem, image);
        assertThat(k.kind()).isEqualTo(LoadedKernel.Kind.ELF_PVH);
        assertThat(k.pvhEntry()).hasValue(0x200000 + Fixtures.GCC_PVH_ENTRY_OFFSET);
        assertThat(mem.read32(0x201000)).isEqualTo(0xfeedf00d);
    }

    @Test
    void gccPvhNoteWithBadSize(@TempDir Path dir) throws Exception {
        Require.that(Fixtures.gccAvailable(), "gcc not found: needed for the gcc-built ELF fixtures");
        byte[] image = Fixtures.gccPvhElf(dir, true, 2, 0x100000);
        assertThatThrownBy(() -> new ElfLoader().load(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("2-byte descriptor");
    }

    @Test
    void gccSegmentOutsideRam(@TempDir Path dir) throws Exception {
        Require.that(Fixtures.gccAvailable(), "gcc not found: needed for the gcc-built ELF fixtures");
        byte[] image = Fixtures.gccPvhElf(dir, true, 8, 0x1000_0000L); // 256 MiB, beyond 64 MiB of RAM
        assertThatThrownBy(() -> new ElfLoader().load(mem, image)).isInstanceOf(BootException.class)
                .hasMessageContaining("outside guest RAM");
    }
}
