package dev.kindling.boot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.boot.Fixtures.Seg;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class PvhBootTest {
    private static final long MIB = 1L << 20;
    private static final long KERNEL = 0x100_0000;

    private GuestMemory mem;
    private LoadedKernel kernel;

    @BeforeEach
    void setUp() {
        mem = MicrovmLayout.anonymousMemory(64 * MIB);
        byte[] image = Fixtures.elf(true, KERNEL, List.of(new Seg(KERNEL, Fixtures.pattern(0x1000, 0), 0x80_0000)),
                List.of(Fixtures.pvhNote64(KERNEL + 0x100)));
        kernel = new ElfLoader().load(mem, image);
    }

    @AfterEach
    void close() {
        mem.close();
    }

    @Test
    void startInfoMemmapModuleAndCmdline() {
        byte[] initrd = Fixtures.pattern(10_000, 4);
        CmdLine cmd = CmdLine.of("console=ttyS0 panic=-1").appendVirtioMmioDevice(0xd0000000L, 5);

        BootCpuState cpu = PvhBoot.configure(mem, kernel, cmd, initrd);

        long si = MicrovmLayout.PVH_START_INFO;
        assertThat(mem.read32(si)).isEqualTo(0x336ec578);
        assertThat(mem.read32(si + 4)).isEqualTo(1); // version
        assertThat(mem.read32(si + 8)).isZero(); // flags
        assertThat(mem.read32(si + 12)).isEqualTo(1); // nr_modules
        assertThat(mem.read64(si + 16)).isEqualTo(0x7800); // modlist_paddr
        assertThat(mem.read64(si + 24)).isEqualTo(0x20000); // cmdline_paddr
        assertThat(mem.read64(si + 32)).isZero(); // rsdp_paddr
        assertThat(mem.read64(si + 40)).isEqualTo(0x7000); // memmap_paddr
        assertThat(mem.read32(si + 48)).isEqualTo(3); // memmap_entries

        List<E820Entry> expected = MicrovmLayout.e820(64 * MIB);
        for (int i = 0; i < 3; i++) {
            long e = 0x7000 + 24L * i;
            assertThat(new E820Entry(mem.read64(e), mem.read64(e + 8), mem.read32(e + 16))).isEqualTo(expected.get(i));
            assertThat(mem.read32(e + 20)).isZero();
        }

        long initrdAt = (64 * MIB - 10_000) & ~0xfffL;
        assertThat(mem.read64(0x7800)).isEqualTo(initrdAt);
        assertThat(mem.read64(0x7808)).isEqualTo(10_000);
        assertThat(mem.read64(0x7810)).isZero(); // module cmdline_paddr
        assertThat(mem.read(initrdAt, initrd.length)).isEqualTo(initrd);
        assertThat(PvhBoot.initrdPlacement(mem, kernel, 10_000)).isEqualTo(new AddressRange(initrdAt, 10_000));

        assertThat(Fixtures.cString(mem, 0x20000)).isEqualTo("console=ttyS0 panic=-1 virtio_mmio.device=512@0xd0000000:5");

        assertThat(cpu.longMode()).isFalse();
        assertThat(cpu.regs().rip()).isEqualTo(KERNEL + 0x100);
        assertThat(cpu.regs().rbx()).isEqualTo(si);
        assertThat(cpu.regs().rflags()).isEqualTo(0x2);
        assertThat(cpu.cr0() & BootCpuState.CR0_PE).isNotZero();
        assertThat(cpu.cr0() & BootCpuState.CR0_PG).isZero();
        assertThat(cpu.cr4()).isZero();
        assertThat(cpu.efer()).isZero();
        assertThat(cpu.cs().db()).isTrue();
        assertThat(cpu.cs().l()).isFalse();
        assertThat(cpu.cs().limit()).isEqualTo(0xffffffffL);
        assertThat(cpu.cs().base()).isZero();
        assertThat(cpu.ds().type()).isEqualTo(3);
        assertThat(cpu.tr().limit()).isEqualTo(0x67);
        assertThat(cpu.tr().type()).isEqualTo(0xb);
        // the GDT the segments came from is in memory
        assertThat(mem.read64(MicrovmLayout.GDT_START + BootGdt.CODE32_SELECTOR)).isEqualTo(BootGdt.entry(BootGdt.CODE32_SELECTOR));
    }

    @Test
    void withoutInitrd() {
        PvhBoot.configure(mem, kernel, new CmdLine());
        assertThat(mem.read32(MicrovmLayout.PVH_START_INFO + 12)).isZero();
        assertThat(mem.read64(MicrovmLayout.PVH_START_INFO + 16)).isZero();
        assertThat(mem.read8(0x20000)).isZero(); // empty command line, still NUL-terminated
    }

    @Test
    void initrdTooLargeIsRejectedBeforeAnythingIsWritten() {
        // the kernel occupies [16 MiB, 24 MiB); 41 MiB more does not fit below 64 MiB
        assertThatThrownBy(() -> PvhBoot.configure(mem, kernel, CmdLine.of("x"), new byte[41 << 20]))
                .isInstanceOf(BootException.class).hasMessageContaining("do not fit");
        assertThat(mem.read32(MicrovmLayout.PVH_START_INFO)).isZero();
        assertThat(mem.read8(0x20000)).isZero();
        // 40 MiB just fits
        PvhBoot.check(mem, kernel, CmdLine.of("x"), 40 << 20);
    }

    @Test
    void kernelWithoutPvhEntry() {
        byte[] image = Fixtures.elf(true, KERNEL, List.of(new Seg(KERNEL, Fixtures.pattern(0x100, 0))), List.of());
        LoadedKernel plain = new ElfLoader().inspect(mem, image);
        assertThatThrownBy(() -> PvhBoot.configure(mem, plain, new CmdLine())).isInstanceOf(BootException.class)
                .hasMessageContaining("no PVH entry");
    }

    @Test
    void commandLineTooLong() {
        CmdLine big = new CmdLine(8192).append("x".repeat(3000));
        assertThatThrownBy(() -> PvhBoot.configure(mem, kernel, big)).isInstanceOf(BootException.class)
                .hasMessageContaining("command line");
        assertThat(mem.read8(0x20000)).isZero();
    }

    @Test
    void initrdGoesToTheTopOfLowRamNotAbove4GiB() {
        // a sparse two-region machine: 8 MiB at 0 and 8 MiB at 4 GiB
        try (GuestMemory split = new GuestMemory(List.of(MemoryRegion.anonymous(0, 8 * MIB),
                MemoryRegion.anonymous(MicrovmLayout.HIGH_RAM_START, 8 * MIB)))) {
            LoadedKernel k = new FlatBinaryLoader().inspect(split, new byte[16]);
            assertThat(PvhBoot.initrdPlacement(split, k, 0x1800)).isEqualTo(new AddressRange(8 * MIB - 0x2000, 0x1800));
            PvhBoot.configure(split, k, new CmdLine(), new byte[0x1800]);
            assertThat(split.read32(MicrovmLayout.PVH_START_INFO + 48)).isEqualTo(4);
            long last = 0x7000 + 24L * 3;
            assertThat(new E820Entry(split.read64(last), split.read64(last + 8), split.read32(last + 16)))
                    .isEqualTo(E820Entry.ram(MicrovmLayout.HIGH_RAM_START, 8 * MIB));
            assertThatThrownBy(() -> PvhBoot.initrdPlacement(split, k, 8 * MIB)).isInstanceOf(BootException.class);
        }
    }
}
