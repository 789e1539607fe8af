package dev.kindling.boot;

import static dev.kindling.boot.MicrovmLayout.CMDLINE_START;
import static dev.kindling.boot.MicrovmLayout.ZERO_PAGE_START;
import static dev.kindling.boot.MicrovmLayout.hex;

import dev.kindling.memory.GuestMemory;
import java.util.List;
import java.util.Optional;

/**
 * Boot configurator for the Linux 64-bit boot protocol (Documentation/arch/x86/boot.rst, "64-bit Boot Protocol";
 * zero-page.rst): writes the zero page ({@code struct boot_params}) at {@link MicrovmLayout#ZERO_PAGE_START}, the
 * command line, the initrd, the boot GDT ({@code __BOOT_CS} 0x10, {@code __BOOT_DS} 0x18) and page tables that
 * identity-map the first {@link #IDENTITY_MAP_GIB} GiB, and returns the long-mode state with RIP at the kernel's
 * 64-bit entry and RSI at the zero page.
 *
 * <p>Zero page contents: the kernel's setup header copied to 0x1f1 (for an ELF {@code vmlinux}, which has none,
 * {@link SetupHeader#synthetic()}), then {@code type_of_loader} 0xff, {@code CAN_USE_HEAP} in {@code loadflags},
 * {@code heap_end_ptr} {@link #HEAP_END_PTR}, {@code cmd_line_ptr}/{@code ext_cmd_line_ptr},
 * {@code ramdisk_image}/{@code ramdisk_size} with their {@code ext_} high halves, {@code code32_start}, and the
 * e820 map ({@code e820_entries} at 0x1e8, {@code e820_table} at 0x2d0). The initrd goes at the top of the RAM
 * below the MMIO hole and below {@code initrd_addr_max}. A device tree goes into {@code setup_data} as
 * {@code SETUP_DTB} at {@link MicrovmLayout#SETUP_DATA_START} ({@code struct setup_data}: next, type, len,
 * then the blob), which Linux reads with {@code CONFIG_OF_EARLY_FLATTREE}. Everything is checked before
 * anything is written.
 */
public final class LinuxBoot {
    public static final int ZP_EXT_RAMDISK_IMAGE = 0x0c0;
    public static final int ZP_EXT_RAMDISK_SIZE = 0x0c4;
    public static final int ZP_EXT_CMD_LINE_PTR = 0x0c8;
    public static final int ZP_E820_ENTRIES = 0x1e8;
    public static final int ZP_E820_TABLE = 0x2d0;
    public static final int E820_ENTRY_SIZE = 20;
    /** {@code E820_MAX_ENTRIES_ZEROPAGE}. */
    public static final int E820_MAX_ENTRIES = 128;
    /** Loader type "undefined" (boot.rst: 0xff for loaders without an assigned id). */
    public static final int TYPE_OF_LOADER = 0xff;
    /** End of the setup heap relative to the real-mode code, minus 0x200, as boot.rst's example sets it. */
    public static final int HEAP_END_PTR = 0xe000 - 0x200;
    /** {@code setup_data} type of a flattened device tree. */
    public static final int SETUP_DTB = 2;
    /** {@code struct setup_data} before its payload: u64 next, u32 type, u32 len. */
    public static final int SETUP_DATA_HEADER_SIZE = 16;
    /** The boot protocol version that introduced {@code setup_data}. */
    public static final int SETUP_DATA_VERSION = 0x0209;
    /** The page tables map this many GiB. */
    public static final int IDENTITY_MAP_GIB = 1;

    private LinuxBoot() {
    }

    /** Checks that {@link #configure} would succeed with an initrd of {@code initrdSize} bytes (0: none). */
    public static void check(GuestMemory memory, LoadedKernel kernel, CmdLine cmdline, long initrdSize) {
        check(memory, kernel, cmdline, initrdSize, null);
    }

    /** As {@link #check(GuestMemory, LoadedKernel, CmdLine, long)}, with a device tree (or null). */
    public static void check(GuestMemory memory, LoadedKernel kernel, CmdLine cmdline, long initrdSize,
                             byte[] deviceTree) {
        plan(memory, kernel, cmdline, initrdSize, deviceTree);
    }

    /** Where {@link #configure} puts an initrd of {@code size} bytes. */
    public static AddressRange initrdPlacement(GuestMemory memory, LoadedKernel kernel, long size) {
        return Initrd.place(memory, kernel, size, initrdLimit(header(kernel)));
    }

    /** Configures a 64-bit Linux boot without an initrd. */
    public static BootCpuState configure(GuestMemory memory, LoadedKernel kernel, CmdLine cmdline) {
        return configure(memory, kernel, cmdline, null, null);
    }

    /** Configures a 64-bit Linux boot without a device tree. */
    public static BootCpuState configure(GuestMemory memory, LoadedKernel kernel, CmdLine cmdline, byte[] initrd) {
        return configure(memory, kernel, cmdline, initrd, null);
    }

    /**
     * Writes the zero page, command line, initrd, device tree, GDT and page tables and returns the state for the kernel's
     * 64-bit entry ({@link LoadedKernel#entry()}).
     *
     * @param initrd     the initrd, or null for none
     * @param deviceTree a flattened device tree for {@code setup_data}, or null for none
     */
    public static BootCpuState configure(GuestMemory memory, LoadedKernel kernel, CmdLine cmdline, byte[] initrd,
                                         byte[] deviceTree) {
        Plan plan = plan(memory, kernel, cmdline, initrd == null ? 0 : initrd.length, deviceTree);
        long zp = ZERO_PAGE_START;
        memory.slice(zp, MicrovmLayout.ZERO_PAGE_SIZE).fill((byte) 0);
        memory.write(zp + SetupHeader.OFFSET, plan.header.bytes());
        memory.write8(zp + SetupHeader.TYPE_OF_LOADER, (byte) TYPE_OF_LOADER);
        memory.write8(zp + SetupHeader.LOADFLAGS, (byte) (plan.header.loadflags() | SetupHeader.CAN_USE_HEAP));
        memory.write16(zp + SetupHeader.HEAP_END_PTR, (short) HEAP_END_PTR);
        memory.write32(zp + SetupHeader.CODE32_START, (int) kernel.segments().get(0).start());
        memory.write32(zp + SetupHeader.CMD_LINE_PTR, (int) CMDLINE_START);
        memory.write32(zp + ZP_EXT_CMD_LINE_PTR, (int) (CMDLINE_START >>> 32));
        if (plan.initrd.isPresent()) {
            AddressRange r = plan.initrd.get();
            memory.write32(zp + SetupHeader.RAMDISK_IMAGE, (int) r.start());
            memory.write32(zp + SetupHeader.RAMDISK_SIZE, (int) r.size());
            memory.write32(zp + ZP_EXT_RAMDISK_IMAGE, (int) (r.start() >>> 32));
            memory.write32(zp + ZP_EXT_RAMDISK_SIZE, (int) (r.size() >>> 32));
            Initrd.write(memory, r, initrd);
        }
        memory.write8(zp + ZP_E820_ENTRIES, (byte) plan.e820.size());
        for (int i = 0; i < plan.e820.size(); i++) {
            E820Entry e = plan.e820.get(i);
            long at = zp + ZP_E820_TABLE + (long) i * E820_ENTRY_SIZE;
            memory.write64(at, e.address());
            memory.write64(at + 8, e.size());
            memory.write32(at + 16, e.type());
        }
        if (deviceTree != null) {
            long at = MicrovmLayout.SETUP_DATA_START;
            memory.write64(at, 0); // the last of the list
            memory.write32(at + 8, SETUP_DTB);
            memory.write32(at + 12, deviceTree.length);
            memory.write(at + SETUP_DATA_HEADER_SIZE, deviceTree);
            memory.write64(zp + SetupHeader.SETUP_DATA, at);
        }
        memory.write(CMDLINE_START, cmdline.toBytesWithNul());
        BootGdt.write(memory);
        long cr3 = PageTables.writeIdentityMap(memory, IDENTITY_MAP_GIB);
        return BootCpuState.longMode64(kernel.entry(), zp, cr3);
    }

    private record Plan(SetupHeader header, List<E820Entry> e820, Optional<AddressRange> initrd) {
    }

    private static SetupHeader header(LoadedKernel kernel) {
        return kernel.setupHeader().orElseGet(SetupHeader::synthetic);
    }

    private static long initrdLimit(SetupHeader h) {
        return Math.min(h.initrdAddrMax() + 1, MicrovmLayout.HIGH_RAM_START);
    }

    private static Plan plan(GuestMemory memory, LoadedKernel kernel, CmdLine cmdline, long initrdSize,
                             byte[] deviceTree) {
        SetupHeader h = header(kernel);
        if (deviceTree != null) {
            if (h.version() < SETUP_DATA_VERSION) {
                throw new BootException("the kernel's boot protocol " + h.versionString()
                        + " predates setup_data (2.09): it cannot take a device tree");
            }
            if (deviceTree.length > MicrovmLayout.SETUP_DATA_MAX_SIZE - SETUP_DATA_HEADER_SIZE) {
                throw new BootException("device tree of " + deviceTree.length + " bytes; setup_data at "
                        + hex(MicrovmLayout.SETUP_DATA_START) + " holds "
                        + (MicrovmLayout.SETUP_DATA_MAX_SIZE - SETUP_DATA_HEADER_SIZE));
            }
            Checks.ram(memory, MicrovmLayout.SETUP_DATA_START, MicrovmLayout.SETUP_DATA_MAX_SIZE, "setup_data");
        }
        long mapped = PageTables.mappedBytes(IDENTITY_MAP_GIB);
        if (kernel.entry() < 0 || kernel.entry() >= mapped || kernel.kernelEnd() > mapped) {
            throw new BootException("kernel " + kernel.footprint() + " with entry " + hex(kernel.entry())
                    + " is not inside the identity-mapped first " + IDENTITY_MAP_GIB + " GiB");
        }
        long max = Math.min(h.cmdlineSize(), MicrovmLayout.CMDLINE_MAX_SIZE - 1);
        if (cmdline.length() > max) {
            throw new BootException("command line of " + cmdline.length() + " characters is longer than the " + max
                    + " the kernel accepts (cmdline_size " + h.cmdlineSize() + ", room at " + hex(CMDLINE_START) + ")");
        }
        List<E820Entry> e820 = MicrovmLayout.e820(memory);
        if (e820.size() > E820_MAX_ENTRIES) {
            throw new BootException("e820 map of " + e820.size() + " entries; the zero page holds " + E820_MAX_ENTRIES);
        }
        Checks.ram(memory, ZERO_PAGE_START, MicrovmLayout.ZERO_PAGE_SIZE, "zero page");
        Checks.ram(memory, CMDLINE_START, MicrovmLayout.CMDLINE_MAX_SIZE, "command line");
        Checks.ram(memory, MicrovmLayout.GDT_START, MicrovmLayout.IDT_START + 8 - MicrovmLayout.GDT_START, "boot GDT and IDT");
        Checks.ram(memory, MicrovmLayout.PML4_START, MicrovmLayout.PAGE_TABLES_END - MicrovmLayout.PML4_START, "page tables");
        Optional<AddressRange> initrd = initrdSize == 0 ? Optional.empty()
                : Optional.of(Initrd.place(memory, kernel, initrdSize, initrdLimit(h)));
        return new Plan(h, e820, initrd);
    }
}
