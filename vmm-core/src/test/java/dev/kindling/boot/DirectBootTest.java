package dev.kindling.boot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.boot.Fixtures.Seg;
import dev.kindling.memory.GuestMemory;
import dev.kindling.testing.Require;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DirectBootTest {
    private static final long MIB = 1L << 20;
    private static final long KERNEL = 0x100_0000;

    private GuestMemory mem;

    @BeforeEach
    void memory() {
        mem = MicrovmLayout.anonymousMemory(64 * MIB);
    }

    @AfterEach
    void close() {
        mem.close();
    }

    private static byte[] pvhKernel() {
        return Fixtures.elf(true, KERNEL, List.of(new Seg(KERNEL, Fixtures.pattern(0x1000, 0), 0x40_0000)),
                List.of(Fixtures.pvhNote64(KERNEL + 0x20)));
    }

    @Test
    void pvhKernelBootsThroughPvh() {
        DirectBoot.Result r = DirectBoot.boot(mem, pvhKernel(), new byte[0x3000], CmdLine.of("console=ttyS0"), 2);
        assertThat(r.protocol()).isEqualTo(DirectBoot.Protocol.PVH);
        assertThat(r.kernel().kind()).isEqualTo(LoadedKernel.Kind.ELF_PVH);
        assertThat(r.bsp().regs().rip()).isEqualTo(KERNEL + 0x20);
        assertThat(r.bsp().regs().rbx()).isEqualTo(MicrovmLayout.PVH_START_INFO);
        assertThat(r.initrd()).contains(new AddressRange(64 * MIB - 0x3000, 0x3000));
        assertThat(mem.read64(0x7800)).isEqualTo(64 * MIB - 0x3000);
        assertThat(mem.read32(MicrovmLayout.PVH_START_INFO)).isEqualTo(PvhBoot.XEN_HVM_START_MAGIC);
        assertThat(r.mpTable().start()).isEqualTo(0x9fc00);
        assertThat(mem.read32(0x9fc00)).isEqualTo(0x5f504d5f); // "_MP_"
        assertThat(mem.read8(KERNEL)).isEqualTo(Fixtures.pattern(1, 0)[0]);
    }

    @Test
    void deviceTreeTakesTheLinuxEntryAndGivesTheMpTablesIoapicLinuxsId() {
        byte[] dtb = X86DeviceTree.build(List.of());
        DirectBoot.Result r = DirectBoot.boot(mem, pvhKernel(), null, dtb, new CmdLine(), 3, DirectBoot.Protocol.AUTO,
                MpTable.Options.DEFAULT);
        assertThat(r.protocol()).isEqualTo(DirectBoot.Protocol.LINUX_64);
        assertThat(mem.read32(MicrovmLayout.SETUP_DATA_START + 16)).as("the blob's magic, big-endian")
                .isEqualTo(Integer.reverseBytes(0xd00dfeed));
        long table = mem.read32(MicrovmLayout.MPTABLE_START + 4) & 0xffffffffL;
        long ioapic = table + MpTable.HEADER_SIZE + 3L * MpTable.PROCESSOR_ENTRY_SIZE + MpTable.ENTRY_SIZE;
        assertThat(mem.read8(ioapic)).as("IOAPIC entry").isEqualTo((byte) MpTable.TYPE_IOAPIC);
        assertThat(mem.read8(ioapic + 1)).as("its id").isEqualTo((byte) X86DeviceTree.LINUX_IOAPIC_ID);

        assertThatThrownBy(() -> DirectBoot.boot(mem, pvhKernel(), null, dtb, new CmdLine(), 1, DirectBoot.Protocol.PVH,
                MpTable.Options.DEFAULT)).isInstanceOf(BootException.class).hasMessageContaining("PVH has no way");
    }

    @Test
    void pvhKernelCanBeForcedThroughTheLinuxEntry() {
        DirectBoot.Result r = DirectBoot.boot(mem, pvhKernel(), null, new CmdLine(), 1, DirectBoot.Protocol.LINUX_64,
                MpTable.Options.DEFAULT);
        assertThat(r.protocol()).isEqualTo(DirectBoot.Protocol.LINUX_64);
        assertThat(r.bsp().longMode()).isTrue();
        assertThat(r.bsp().regs().rip()).isEqualTo(KERNEL);
        assertThat(r.initrd()).isEmpty();
    }

    @Test
    void bzImageBootsThroughTheLinuxEntry() {
        DirectBoot.Result r = DirectBoot.boot(mem, Fixtures.bzImage(Fixtures.pattern(0x2000, 0)), new byte[0x1000],
                new CmdLine().appendVirtioMmioDevice(MicrovmLayout.VIRTIO_MMIO_BASE, 5), 4);
        assertThat(r.protocol()).isEqualTo(DirectBoot.Protocol.LINUX_64);
        assertThat(r.bsp().regs().rip()).isEqualTo(0x100200);
        assertThat(r.bsp().regs().rsi()).isEqualTo(MicrovmLayout.ZERO_PAGE_START);
        assertThat(mem.read32(MicrovmLayout.ZERO_PAGE_START + 0x218) & 0xffffffffL).isEqualTo(r.initrd().orElseThrow().start());
    }

    @Test
    void plainElfCannotBeForcedThroughPvh() {
        byte[] image = Fixtures.elf(true, KERNEL, List.of(new Seg(KERNEL, Fixtures.pattern(0x100, 0))), List.of());
        assertThatThrownBy(() -> DirectBoot.boot(mem, image, null, new CmdLine(), 1, DirectBoot.Protocol.PVH,
                MpTable.Options.DEFAULT)).isInstanceOf(BootException.class).hasMessageContaining("no PVH entry");
        assertThat(mem.read8(KERNEL)).isZero();
    }

    @Test
    void everythingIsCheckedBeforeAnythingIsWritten() {
        assertThatThrownBy(() -> DirectBoot.boot(mem, pvhKernel(), new byte[60 << 20], new CmdLine(), 1))
                .isInstanceOf(BootException.class).hasMessageContaining("do not fit");
        assertThatThrownBy(() -> DirectBoot.boot(mem, pvhKernel(), null, new CmdLine(), 300))
                .isInstanceOf(BootException.class).hasMessageContaining("CPUs");
        assertThat(mem.read8(KERNEL)).as("kernel not loaded").isZero();
        assertThat(mem.read32(MicrovmLayout.PVH_START_INFO)).isZero();
        assertThat(mem.read32(0x9fc00)).isZero();
    }

    @Test
    void gccBuiltPvhGuest(@TempDir Path dir) throws Exception {
        Require.that(Fixtures.gccAvailable(), "gcc not found: needed for the gcc-built ELF fixtures");
        byte[] image = Fixtures.gccPvhElf(dir, true, 8, 0x100000);
        DirectBoot.Result r = DirectBoot.boot(mem, image, null, CmdLine.of("console=ttyS0"), 1);
        assertThat(r.protocol()).isEqualTo(DirectBoot.Protocol.PVH);
        assertThat(r.bsp().regs().rip()).isEqualTo(0x100000 + Fixtures.GCC_PVH_ENTRY_OFFSET);
        // the entry is the "movl $0x1234, %eax" (b8 34 12 00 00)
        assertThat(mem.read8(r.bsp().regs().rip())).isEqualTo((byte) 0xb8);
    }
}
