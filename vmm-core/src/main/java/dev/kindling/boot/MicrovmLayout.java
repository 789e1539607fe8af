package dev.kindling.boot;

import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.sys.Fd;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The guest-physical layout of a microvm machine, after QEMU's {@code hw/i386/microvm.h} and
 * Firecracker's {@code arch/x86_64/layout.rs}.
 *
 * <pre>
 * 0x0000_0000 - 0x0000_04ff  real-mode IVT and BIOS data area (left zero)
 * 0x0000_0500 - 0x0000_053f  boot GDT (null, code32, code64, data, 16-byte TSS)   {@link #GDT_START}
 * 0x0000_0540 - 0x0000_0547  boot IDT (empty)                                      {@link #IDT_START}
 * 0x0000_5000 - 0x0000_5fff  Linux zero page (boot_params), bzImage / 64-bit entry {@link #ZERO_PAGE_START}
 * 0x0000_6000 - 0x0000_6037  PVH hvm_start_info                                    {@link #PVH_START_INFO}
 * 0x0000_7000 - 0x0000_77ff  PVH memory map (hvm_memmap_table_entry[])              {@link #MEMMAP_START}
 * 0x0000_7800 - 0x0000_7fff  PVH module list (hvm_modlist_entry[])                  {@link #MODLIST_START}
 * 0x0000_8000 - 0x0000_8fef  boot stack, growing down from                          {@link #BOOT_STACK_POINTER}
 * 0x0000_9000 / a000 / b000  PML4 / PDPT / PD (a 4 GiB map adds PDs at c000-e000)   {@link #PML4_START}
 * 0x0001_0000 - 0x0001_ffff  Linux setup_data (a device tree: SETUP_DTB)           {@link #SETUP_DATA_START}
 * 0x0002_0000 - 0x0002_07ff  kernel command line                                   {@link #CMDLINE_START}
 * 0x0009_fc00 - 0x0009_ffff  EBDA: the Intel MP table starts here                  {@link #EBDA_START}
 * 0x0009_fc00 - 0x000f_ffff  reserved in the e820 map (EBDA, VGA hole, BIOS area)
 * 0x0010_0000 -              high memory: kernel, then free RAM, initrd at the top  {@link #HIMEM_START}
 * </pre>
 *
 * Firecracker keeps its zero page at 0x7000, the address of the PVH memory map; it never uses both
 * protocols at once. Kindling moves the zero page to 0x5000 so that no two boot structures share an
 * address whichever protocol is used.
 *
 * <p>RAM: if the machine has {@link #MMIO_HOLE_THRESHOLD} (0xb000_0000) bytes or more, the first
 * {@link #LOW_RAM_WHEN_SPLIT} (2 GiB) go at 0 and the rest at {@link #HIGH_RAM_START} (4 GiB); otherwise all
 * of it goes at 0. So below 4 GiB, {@code [0xb000_0000, 4 GiB)} at least is never RAM: the 32-bit MMIO hole
 * for virtio-mmio, the IOAPIC and the local APICs.
 */
public final class MicrovmLayout {
    private MicrovmLayout() {
    }

    public static final long PAGE_SIZE = 0x1000;

    /** Boot GDT; {@link BootGdt} describes its entries. */
    public static final long GDT_START = 0x500;
    /** Room reserved for the GDT: 8 descriptors. */
    public static final long GDT_MAX_SIZE = 0x40;
    /** Boot IDT: one zero descriptor, so that any exception before the kernel's own IDT shuts the VM down. */
    public static final long IDT_START = 0x540;
    /** Linux {@code boot_params} for the 64-bit boot protocol. */
    public static final long ZERO_PAGE_START = 0x5000;
    public static final long ZERO_PAGE_SIZE = 0x1000;
    /** PVH {@code hvm_start_info}; EBX points here at the PVH entry. */
    public static final long PVH_START_INFO = 0x6000;
    /** PVH memory map. */
    public static final long MEMMAP_START = 0x7000;
    /** PVH module list. */
    public static final long MODLIST_START = 0x7800;
    /** Initial RSP/ESP. */
    public static final long BOOT_STACK_POINTER = 0x8ff0;
    public static final long PML4_START = 0x9000;
    public static final long PDPTE_START = 0xa000;
    /** First page directory; an identity map of N GiB uses N directories from here. */
    public static final long PDE_START = 0xb000;
    /** End of the room for page tables: PML4, PDPT and up to 4 page directories. */
    public static final long PAGE_TABLES_END = 0xf000;
    /** The 64-bit boot protocol's {@code setup_data} list, up to the command line. */
    public static final long SETUP_DATA_START = 0x10000;
    public static final long SETUP_DATA_MAX_SIZE = 0x10000;
    /** Kernel command line. */
    public static final long CMDLINE_START = 0x20000;
    /** Largest command line including its NUL terminator: x86 Linux's {@code COMMAND_LINE_SIZE}. */
    public static final int CMDLINE_MAX_SIZE = 2048;
    /** Extended BIOS data area: the last KiB of the 640 KiB of base memory. The MP table starts here. */
    public static final long EBDA_START = 0x9fc00;
    /** Where the MP floating pointer goes: Linux scans the last KiB of base memory for it. */
    public static final long MPTABLE_START = EBDA_START;
    /** First byte of high memory, where kernels load. */
    public static final long HIMEM_START = 0x100000;

    /** RAM sizes from this value up are split around the 32-bit MMIO hole. */
    public static final long MMIO_HOLE_THRESHOLD = 0xb000_0000L;
    /** RAM below 4 GiB when the RAM is split. */
    public static final long LOW_RAM_WHEN_SPLIT = 0x8000_0000L;
    /** No RAM from here up to 4 GiB, ever. */
    public static final long MMIO_HOLE_START = MMIO_HOLE_THRESHOLD;
    /** Where RAM above the hole starts. */
    public static final long HIGH_RAM_START = 0x1_0000_0000L;
    /** Smallest machine this layout supports. */
    public static final long MIN_RAM_SIZE = 2L << 20;

    /** Default IOAPIC base address. */
    public static final long IOAPIC_ADDRESS = 0xfec0_0000L;
    /** Default local APIC base address. */
    public static final long LAPIC_ADDRESS = 0xfee0_0000L;
    /** First virtio-mmio transport (QEMU microvm's value); transport i is at base + i * size. */
    public static final long VIRTIO_MMIO_BASE = 0xd000_0000L;
    public static final long VIRTIO_MMIO_SIZE = 0x200;
    /** IRQ of virtio-mmio transport 0; transport i uses base + i. */
    public static final int VIRTIO_IRQ_BASE = 5;
    public static final int VIRTIO_MAX_TRANSPORTS = 8;
    /** Number of IOAPIC pins (GSIs 0..23). */
    public static final int IOAPIC_PINS = 24;

    /** A named area of low memory that the boot structures occupy. */
    public record Area(String name, AddressRange range) {
        Area(String name, long start, long end) {
            this(name, new AddressRange(start, end - start));
        }
    }

    /** The areas below 1 MiB that kernels, initrds and flat binaries must not overlap. */
    public static final List<Area> BOOT_AREAS = List.of(
            new Area("real-mode IVT and BIOS data area", 0, GDT_START),
            new Area("boot GDT and IDT", GDT_START, 0x600),
            new Area("Linux zero page", ZERO_PAGE_START, ZERO_PAGE_START + ZERO_PAGE_SIZE),
            new Area("PVH start info", PVH_START_INFO, MEMMAP_START),
            new Area("PVH memory map", MEMMAP_START, MODLIST_START),
            new Area("PVH module list", MODLIST_START, 0x8000),
            new Area("boot stack", 0x8000, PML4_START),
            new Area("boot page tables", PML4_START, PAGE_TABLES_END),
            new Area("Linux setup_data", SETUP_DATA_START, SETUP_DATA_START + SETUP_DATA_MAX_SIZE),
            new Area("kernel command line", CMDLINE_START, CMDLINE_START + CMDLINE_MAX_SIZE),
            new Area("EBDA, MP table and legacy BIOS area", EBDA_START, HIMEM_START));

    /** The boot area that {@code r} overlaps, or null. */
    public static Area overlappedBootArea(AddressRange r) {
        for (Area a : BOOT_AREAS) {
            if (a.range().overlaps(r)) {
                return a;
            }
        }
        return null;
    }

    /** Throws unless {@code ramSize} is a supported machine size. */
    public static void checkRamSize(long ramSize) {
        if (ramSize < MIN_RAM_SIZE || ramSize % PAGE_SIZE != 0) {
            throw new BootException("RAM size 0x" + Long.toHexString(ramSize)
                    + " must be a multiple of 4 KiB and at least 0x" + Long.toHexString(MIN_RAM_SIZE));
        }
        if (ramSize > Long.MAX_VALUE - HIGH_RAM_START) {
            throw new BootException("RAM size 0x" + Long.toHexString(ramSize) + " is too large");
        }
    }

    /** RAM placed below 4 GiB for a machine of {@code ramSize} bytes. */
    public static long lowRamSize(long ramSize) {
        checkRamSize(ramSize);
        return ramSize >= MMIO_HOLE_THRESHOLD ? LOW_RAM_WHEN_SPLIT : ramSize;
    }

    /** The guest-physical RAM ranges of a machine of {@code ramSize} bytes: one below 4 GiB, maybe one above. */
    public static List<AddressRange> ramRanges(long ramSize) {
        long low = lowRamSize(ramSize);
        if (low == ramSize) {
            return List.of(new AddressRange(0, ramSize));
        }
        return List.of(new AddressRange(0, low), new AddressRange(HIGH_RAM_START, ramSize - low));
    }

    /** Anonymous guest memory laid out by {@link #ramRanges(long)}. */
    public static GuestMemory anonymousMemory(long ramSize) {
        List<MemoryRegion> regions = new ArrayList<>();
        try {
            for (AddressRange r : ramRanges(ramSize)) {
                regions.add(MemoryRegion.anonymous(r.start(), r.size()));
            }
            return new GuestMemory(regions);
        } catch (RuntimeException e) {
            regions.forEach(MemoryRegion::close);
            throw e;
        }
    }

    /**
     * Guest memory laid out by {@link #ramRanges(long)}, a private copy-on-write mapping of
     * {@code file} as {@link GuestMemory#saveTo} wrote it ({@code file} is borrowed).
     */
    public static GuestMemory privateMemory(Fd file, long ramSize) {
        return GuestMemory.mapPrivate(file, ramRanges(ramSize));
    }

    /**
     * The e820 map for a machine of {@code ramSize} bytes: RAM {@code [0, 0x9fc00)}, reserved
     * {@code [0x9fc00, 1 MiB)} (EBDA with the MP table, VGA hole, BIOS area, as Firecracker reserves it),
     * RAM from 1 MiB to the end of low RAM, and RAM above 4 GiB if the machine has any.
     */
    public static List<E820Entry> e820(long ramSize) {
        return e820(ramRanges(ramSize));
    }

    /** The e820 map for the RAM that {@code memory} actually has, with the same rules. */
    public static List<E820Entry> e820(GuestMemory memory) {
        List<AddressRange> ram = new ArrayList<>();
        for (MemoryRegion r : memory.regions()) {
            ram.add(new AddressRange(r.guestAddress(), r.size()));
        }
        return e820(ram);
    }

    private static List<E820Entry> e820(List<AddressRange> ram) {
        List<E820Entry> out = new ArrayList<>();
        out.add(E820Entry.reserved(EBDA_START, HIMEM_START - EBDA_START));
        for (AddressRange r : ram) {
            long lowEnd = Math.min(r.end(), EBDA_START);
            if (r.start() < lowEnd) {
                out.add(E820Entry.ram(r.start(), lowEnd - r.start()));
            }
            long highStart = Math.max(r.start(), HIMEM_START);
            if (highStart < r.end()) {
                out.add(E820Entry.ram(highStart, r.end() - highStart));
            }
        }
        out.sort(Comparator.comparingLong(E820Entry::address));
        return List.copyOf(out);
    }

    /** End of the RAM that holds {@link #HIMEM_START}: where an initrd may end at the latest. */
    static long lowRamEnd(GuestMemory memory) {
        MemoryRegion r = memory.regionAt(HIMEM_START);
        if (r == null) {
            throw new BootException("guest memory has no RAM at 0x" + Long.toHexString(HIMEM_START));
        }
        return Math.min(r.end(), MMIO_HOLE_START);
    }

    static long alignDown(long v, long align) {
        return v & -align;
    }

    static long alignUp(long v, long align) {
        return Math.addExact(v, align - 1) & -align;
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }
}
