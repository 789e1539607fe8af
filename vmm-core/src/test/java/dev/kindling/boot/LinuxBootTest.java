package dev.kindling.boot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.boot.Fixtures.Seg;
import dev.kindling.memory.GuestMemory;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class LinuxBootTest {
    private static final long MIB = 1L << 20;
    private static final long ZP = MicrovmLayout.ZERO_PAGE_START;

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
    void zeroPageForBzImage() {
        byte[] image = Fixtures.bzImage(Fixtures.pattern(0x4000, 1));
        LoadedKernel k = new BzImageLoader().load(mem, image);
        byte[] initrd = Fixtures.pattern(0x2345, 8);

        BootCpuState cpu = LinuxBoot.configure(mem, k, CmdLine.of("console=ttyS0 reboot=k"), initrd);

        // the header, as copied
        assertThat(mem.read8(ZP + 0x1f1)).isEqualTo((byte) 27); // setup_sects
        assertThat(mem.read16(ZP + 0x1fe)).isEqualTo((short) 0xaa55);
        assertThat(mem.read32(ZP + 0x202)).isEqualTo(0x53726448);
        assertThat(mem.read16(ZP + 0x206)).isEqualTo((short) 0x020f);
        assertThat(mem.read32(ZP + 0x238)).isEqualTo(2047); // cmdline_size
        assertThat(mem.read64(ZP + 0x258)).isEqualTo(Fixtures.BZ_PREF_ADDRESS);
        assertThat(mem.read32(ZP + 0x260)).isEqualTo(Fixtures.BZ_INIT_SIZE);
        // what the loader fills in
        assertThat(mem.read8(ZP + 0x210)).isEqualTo((byte) 0xff); // type_of_loader
        assertThat(mem.read8(ZP + 0x211) & 0xff).isEqualTo(SetupHeader.LOADED_HIGH | SetupHeader.CAN_USE_HEAP);
        assertThat(mem.read16(ZP + 0x224) & 0xffff).isEqualTo(0xde00); // heap_end_ptr
        assertThat(mem.read32(ZP + 0x214)).isEqualTo(0x100000); // code32_start
        assertThat(mem.read32(ZP + 0x228)).isEqualTo(0x20000); // cmd_line_ptr
        assertThat(mem.read32(ZP + 0x0c8)).isZero(); // ext_cmd_line_ptr
        long initrdAt = (64 * MIB - 0x2345) & ~0xfffL;
        assertThat(mem.read32(ZP + 0x218) & 0xffffffffL).isEqualTo(initrdAt); // ramdisk_image
        assertThat(mem.read32(ZP + 0x21c)).isEqualTo(0x2345); // ramdisk_size
        assertThat(mem.read32(ZP + 0x0c0)).isZero(); // ext_ramdisk_image
        assertThat(mem.read32(ZP + 0x0c4)).isZero(); // ext_ramdisk_size
        assertThat(mem.read(initrdAt, initrd.length)).isEqualTo(initrd);
        // e820
        List<E820Entry> expected = MicrovmLayout.e820(64 * MIB);
        assertThat(mem.read8(ZP + 0x1e8)).isEqualTo((byte) expected.size());
        for (int i = 0; i < expected.size(); i++) {
            long e = ZP + 0x2d0 + 20L * i;
            assertThat(new E820Entry(mem.read64(e), mem.read64(e + 8), mem.read32(e + 16))).isEqualTo(expected.get(i));
        }
        assertThat(mem.read32(ZP + 0x2d0 + 20L * expected.size() + 16)).as("no further entry").isZero();
        assertThat(Fixtures.cString(mem, 0x20000)).isEqualTo("console=ttyS0 reboot=k");

        assertThat(cpu.longMode()).isTrue();
        assertThat(cpu.regs().rip()).isEqualTo(0x100200);
        assertThat(cpu.regs().rsi()).isEqualTo(ZP);
        assertThat(cpu.regs().rsp()).isEqualTo(MicrovmLayout.BOOT_STACK_POINTER);
        assertThat(cpu.regs().rflags()).isEqualTo(2);
        assertThat(cpu.cr3()).isEqualTo(0x9000);
        assertThat(cpu.cr0() & (BootCpuState.CR0_PE | BootCpuState.CR0_PG)).isEqualTo(BootCpuState.CR0_PE | BootCpuState.CR0_PG);
        assertThat(cpu.cr4() & BootCpuState.CR4_PAE).isNotZero();
        assertThat(cpu.efer()).isEqualTo(BootCpuState.EFER_LME | BootCpuState.EFER_LMA);
        assertThat(cpu.cs().selector()).isEqualTo(0x10); // __BOOT_CS
        assertThat(cpu.ds().selector()).isEqualTo(0x18); // __BOOT_DS
        assertThat(cpu.ss().selector()).isEqualTo(0x18);
        assertThat(cpu.cs().l()).isTrue();
        assertThat(cpu.cs().db()).isFalse();
    }

    @Test
    void gdtAndSegmentsAgree() {
        LoadedKernel k = new BzImageLoader().load(mem, Fixtures.bzImage(Fixtures.pattern(0x1000, 1)));
        BootCpuState cpu = LinuxBoot.configure(mem, k, new CmdLine());
        assertThat(cpu.gdt().base()).isEqualTo(MicrovmLayout.GDT_START);
        assertThat(cpu.gdt().limit()).isEqualTo(BootGdt.entries() * 8 - 1);
        for (BootCpuState.Segment s : List.of(cpu.cs(), cpu.ds(), cpu.es(), cpu.fs(), cpu.gs(), cpu.ss(), cpu.tr())) {
            long d = mem.read64(cpu.gdt().base() + s.selector());
            assertThat(BootGdt.decode(d, s.selector())).isEqualTo(s);
        }
        assertThat(mem.read64(MicrovmLayout.GDT_START)).isZero();
        assertThat(mem.read64(MicrovmLayout.GDT_START + 0x28)).as("upper half of the TSS descriptor").isZero();
        assertThat(mem.read64(cpu.idt().base())).isZero();
    }

    @Test
    void pageTablesIdentityMapTheFirstGiB() {
        LoadedKernel k = new BzImageLoader().load(mem, Fixtures.bzImage(Fixtures.pattern(0x1000, 1)));
        mem.slice(0x9000, 0x6000).fill((byte) 0x5a);
        LinuxBoot.configure(mem, k, new CmdLine());
        assertThat(mem.read64(0x9000)).isEqualTo(0xa003L);
        for (int i = 1; i < 512; i++) {
            assertThat(mem.read64(0x9000 + 8L * i)).isZero();
        }
        assertThat(mem.read64(0xa000)).isEqualTo(0xb003L);
        for (int i = 1; i < 512; i++) {
            assertThat(mem.read64(0xa000 + 8L * i)).isZero();
        }
        for (int i = 0; i < 512; i++) {
            assertThat(mem.read64(0xb000 + 8L * i)).isEqualTo(((long) i << 21) | 0x83);
        }
    }

    @Test
    void elfVmlinuxGetsASyntheticHeader() {
        long kernel = 0x100_0000;
        byte[] image = Fixtures.elf(true, kernel, List.of(new Seg(kernel, Fixtures.pattern(0x1000, 0))), List.of());
        LoadedKernel k = new ElfLoader().load(mem, image);
        BootCpuState cpu = LinuxBoot.configure(mem, k, CmdLine.of("quiet"), new byte[0x1000]);
        assertThat(mem.read16(ZP + 0x1fe)).isEqualTo((short) 0xaa55);
        assertThat(mem.read32(ZP + 0x202)).isEqualTo(0x53726448);
        assertThat(mem.read8(ZP + 0x210)).isEqualTo((byte) 0xff);
        assertThat(mem.read32(ZP + 0x228)).isEqualTo(0x20000);
        assertThat(mem.read32(ZP + 0x21c)).isEqualTo(0x1000);
        assertThat(mem.read32(ZP + 0x230)).isEqualTo(0x0100_0000); // kernel_alignment, as Firecracker sets it
        assertThat(cpu.regs().rip()).isEqualTo(kernel);
        assertThat(cpu.longMode()).isTrue();
    }

    @Test
    void initrdStaysBelowInitrdAddrMax() {
        byte[] image = Fixtures.bzImage(0x020f, 4, Fixtures.pattern(0x1000, 0), b -> b.putInt(0x22c, 0x2ffffff));
        LoadedKernel k = new BzImageLoader().load(mem, image);
        LinuxBoot.configure(mem, k, new CmdLine(), new byte[0x1800]);
        long at = mem.read32(ZP + 0x218) & 0xffffffffL;
        assertThat(at).isEqualTo(0x3000000 - 0x2000);
        assertThat(at + 0x1800 - 1).isLessThanOrEqualTo(0x2ffffff);
    }

    @Test
    void initrdOverlappingTheDecompressionAreaIsRejected() {
        LoadedKernel k = new BzImageLoader().load(mem, Fixtures.bzImage(Fixtures.pattern(0x1000, 0)));
        // the kernel claims up to 32 MiB; 33 MiB of initrd do not fit in the 32 MiB above it
        assertThatThrownBy(() -> LinuxBoot.configure(mem, k, new CmdLine(), new byte[33 << 20]))
                .isInstanceOf(BootException.class).hasMessageContaining("do not fit");
        assertThat(mem.read32(ZP + 0x202)).as("zero page not written").isZero();
        assertThat(mem.read64(0x9000)).as("page tables not written").isZero();
    }

    @Test
    void commandLineLongerThanTheKernelTakes() {
        byte[] image = Fixtures.bzImage(0x020f, 4, Fixtures.pattern(0x1000, 0), b -> b.putInt(0x238, 10));
        LoadedKernel k = new BzImageLoader().load(mem, image);
        LinuxBoot.check(mem, k, CmdLine.of("0123456789"), 0);
        assertThatThrownBy(() -> LinuxBoot.configure(mem, k, CmdLine.of("0123456789a")))
                .isInstanceOf(BootException.class).hasMessageContaining("cmdline_size 10");
    }

    @Test
    void deviceTreeGoesIntoSetupDataAsSetupDtb() {
        LoadedKernel k = new BzImageLoader().load(mem, Fixtures.bzImage(Fixtures.pattern(0x1000, 1)));
        byte[] dtb = Fixtures.pattern(0x123, 3);
        LinuxBoot.configure(mem, k, new CmdLine(), null, dtb);
        long at = mem.read64(ZP + 0x250); // hdr.setup_data
        assertThat(at).isEqualTo(MicrovmLayout.SETUP_DATA_START);
        assertThat(mem.read64(at)).as("next: none").isZero();
        assertThat(mem.read32(at + 8)).as("type SETUP_DTB").isEqualTo(2);
        assertThat(mem.read32(at + 12)).as("len").isEqualTo(dtb.length);
        assertThat(mem.read(at + 16, dtb.length)).isEqualTo(dtb);

        LinuxBoot.configure(mem, k, new CmdLine(), null, null);
        assertThat(mem.read64(ZP + 0x250)).as("no device tree, no setup_data").isZero();
    }

    @Test
    void deviceTreeTheKernelCannotTakeIsRefusedBeforeAnythingIsWritten() {
        LoadedKernel old = new BzImageLoader().load(mem, Fixtures.bzImage(0x0208, 4, Fixtures.pattern(0x1000, 0), b -> { }));
        assertThatThrownBy(() -> LinuxBoot.configure(mem, old, new CmdLine(), null, new byte[16]))
                .isInstanceOf(BootException.class).hasMessageContaining("2.08 predates setup_data");
        LoadedKernel k = new BzImageLoader().load(mem, Fixtures.bzImage(Fixtures.pattern(0x1000, 1)));
        assertThatThrownBy(() -> LinuxBoot.check(mem, k, new CmdLine(), 0, new byte[0x10000]))
                .isInstanceOf(BootException.class).hasMessageContaining("setup_data at 0x10000 holds 65520");
        assertThat(mem.read32(ZP + 0x202)).as("zero page not written").isZero();
    }
}
