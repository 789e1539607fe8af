package dev.kindling.boot;

import static dev.kindling.boot.MicrovmLayout.CMDLINE_START;
import static dev.kindling.boot.MicrovmLayout.MEMMAP_START;
import static dev.kindling.boot.MicrovmLayout.MODLIST_START;
import static dev.kindling.boot.MicrovmLayout.PVH_START_INFO;
import static dev.kindling.boot.MicrovmLayout.hex;

import dev.kindling.memory.GuestMemory;
import java.util.List;
import java.util.Optional;

/**
 * Boot configurator for the PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h): writes
 * {@code hvm_start_info} version 1 at {@link MicrovmLayout#PVH_START_INFO}, the e820 map as
 * {@code hvm_memmap_table_entry}s at {@link MicrovmLayout#MEMMAP_START}, the initrd as module 0 (its
 * {@code hvm_modlist_entry} at {@link MicrovmLayout#MODLIST_START}), the command line at
 * {@link MicrovmLayout#CMDLINE_START} and the boot GDT, and returns the 32-bit entry state:
 * EBX = start info, EIP = the kernel's PVH entry, paging off.
 *
 * <pre>
 * hvm_start_info (56 bytes)          hvm_memmap_table_entry (24)   hvm_modlist_entry (32)
 *  0 u32 magic 0x336ec578             0 u64 addr                    0 u64 paddr
 *  4 u32 version (1)                  8 u64 size                    8 u64 size
 *  8 u32 flags                       16 u32 type (e820)            16 u64 cmdline_paddr
 * 12 u32 nr_modules                  20 u32 reserved               24 u64 reserved
 * 16 u64 modlist_paddr
 * 24 u64 cmdline_paddr
 * 32 u64 rsdp_paddr (0: no ACPI)
 * 40 u64 memmap_paddr
 * 48 u32 memmap_entries
 * 52 u32 reserved
 * </pre>
 *
 * Everything is checked before anything is written.
 */
public final class PvhBoot {
    public static final int XEN_HVM_START_MAGIC = 0x336ec578;
    public static final int START_INFO_VERSION = 1;
    public static final int START_INFO_SIZE = 56;
    public static final int MEMMAP_ENTRY_SIZE = 24;
    public static final int MODLIST_ENTRY_SIZE = 32;
    public static final int MAX_MEMMAP_ENTRIES = (int) (MODLIST_START - MEMMAP_START) / MEMMAP_ENTRY_SIZE;

    private PvhBoot() {
    }

    /** Checks that {@link #configure} would succeed with an initrd of {@code initrdSize} bytes (0: none). */
    public static void check(GuestMemory memory, LoadedKernel kernel, CmdLine cmdline, long initrdSize) {
        plan(memory, kernel, cmdline, initrdSize);
    }

    /** Where {@link #configure} puts an initrd of {@code size} bytes. */
    public static AddressRange initrdPlacement(GuestMemory memory, LoadedKernel kernel, long size) {
        return Initrd.place(memory, kernel, size, MicrovmLayout.HIGH_RAM_START);
    }

    /** Configures a PVH boot without an initrd. */
    public static BootCpuState configure(GuestMemory memory, LoadedKernel kernel, CmdLine cmdline) {
        return configure(memory, kernel, cmdline, null);
    }

    /**
     * Writes the start info, memory map, module list, command line, initrd and GDT and returns the state for the
     * PVH entry. {@code kernel} must have a PVH entry ({@link LoadedKernel.Kind#ELF_PVH}), or be a
     * {@link LoadedKernel.Kind#FLAT} test guest, entered at its address.
     *
     * @param initrd the initrd, or null for none
     */
    public static BootCpuState configure(GuestMemory memory, LoadedKernel kernel, CmdLine cmdline, byte[] initrd) {
        Plan plan = plan(memory, kernel, cmdline, initrd == null ? 0 : initrd.length);

        memory.slice(PVH_START_INFO, START_INFO_SIZE).fill((byte) 0);
        memory.write32(PVH_START_INFO, XEN_HVM_START_MAGIC);
        memory.write32(PVH_START_INFO + 4, START_INFO_VERSION);
        memory.write32(PVH_START_INFO + 8, 0);
        memory.write32(PVH_START_INFO + 12, plan.initrd.isPresent() ? 1 : 0);
        memory.write64(PVH_START_INFO + 16, plan.initrd.isPresent() ? MODLIST_START : 0);
        memory.write64(PVH_START_INFO + 24, CMDLINE_START);
        memory.write64(PVH_START_INFO + 32, 0);
        memory.write64(PVH_START_INFO + 40, MEMMAP_START);
        memory.write32(PVH_START_INFO + 48, plan.memmap.size());

        for (int i = 0; i < plan.memmap.size(); i++) {
            E820Entry e = plan.memmap.get(i);
            long at = MEMMAP_START + (long) i * MEMMAP_ENTRY_SIZE;
            memory.write64(at, e.address());
            memory.write64(at + 8, e.size());
            memory.write32(at + 16, e.type());
            memory.write32(at + 20, 0);
        }
        if (plan.initrd.isPresent()) {
            AddressRange r = plan.initrd.get();
            memory.slice(MODLIST_START, MODLIST_ENTRY_SIZE).fill((byte) 0);
            memory.write64(MODLIST_START, r.start());
            memory.write64(MODLIST_START + 8, r.size());
            Initrd.write(memory, r, initrd);
        }
        memory.write(CMDLINE_START, cmdline.toBytesWithNul());
        BootGdt.write(memory);
        return BootCpuState.protectedMode32(plan.entry, PVH_START_INFO);
    }

    private record Plan(long entry, List<E820Entry> memmap, Optional<AddressRange> initrd) {
    }

    private static Plan plan(GuestMemory memory, LoadedKernel kernel, CmdLine cmdline, long initrdSize) {
        long entry;
        if (kernel.pvhEntry().isPresent()) {
            entry = kernel.pvhEntry().getAsLong();
        } else if (kernel.kind() == LoadedKernel.Kind.FLAT) {
            entry = kernel.entry();
        } else {
            throw new BootException("the " + kernel.kind() + " kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY);"
                    + " boot it with LinuxBoot");
        }
        if (entry > 0xffffffffL) {
            throw new BootException("PVH entry " + hex(entry) + " is above 4 GiB");
        }
        if (cmdline.length() + 1 > MicrovmLayout.CMDLINE_MAX_SIZE) {
            throw new BootException("command line of " + cmdline.length() + " characters is longer than the "
                    + (MicrovmLayout.CMDLINE_MAX_SIZE - 1) + " that fit at " + hex(CMDLINE_START));
        }
        List<E820Entry> memmap = MicrovmLayout.e820(memory);
        if (memmap.size() > MAX_MEMMAP_ENTRIES) {
            throw new BootException("memory map of " + memmap.size() + " entries; at most " + MAX_MEMMAP_ENTRIES + " fit");
        }
        Checks.ram(memory, PVH_START_INFO, 0x8000 - PVH_START_INFO, "PVH start info, memory map and module list");
        Checks.ram(memory, CMDLINE_START, MicrovmLayout.CMDLINE_MAX_SIZE, "command line");
        Checks.ram(memory, MicrovmLayout.GDT_START, MicrovmLayout.IDT_START + 8 - MicrovmLayout.GDT_START, "boot GDT and IDT");
        Optional<AddressRange> initrd = initrdSize == 0 ? Optional.empty()
                : Optional.of(initrdPlacement(memory, kernel, initrdSize));
        return new Plan(entry, memmap, initrd);
    }
}
