package dev.kindling.boot;

import dev.kindling.memory.GuestMemory;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * Loads raw code at a fixed address, for freestanding test guests: the bytes go to {@code address} (by default
 * {@link MicrovmLayout#HIMEM_START}) and execution starts at their first byte. {@link #protectedMode32} and
 * {@link #longMode64} also write the boot GDT (and for long mode an identity map of the first 4 GiB, so that the
 * guest reaches MMIO devices and the APICs) and return the vCPU state.
 */
public final class FlatBinaryLoader implements KernelLoader {
    /** GiB identity-mapped for a long-mode flat guest: all of the 32-bit space, MMIO included. */
    public static final int IDENTITY_MAP_GIB = 4;

    private final long address;

    /** A loader placing code at {@link MicrovmLayout#HIMEM_START}. */
    public FlatBinaryLoader() {
        this(MicrovmLayout.HIMEM_START);
    }

    public FlatBinaryLoader(long address) {
        this.address = address;
    }

    public long address() {
        return address;
    }

    @Override
    public LoadedKernel inspect(GuestMemory memory, byte[] code) {
        if (code.length == 0) {
            throw new BootException("flat binary is empty");
        }
        AddressRange r = new AddressRange(address, code.length);
        Checks.placeable(memory, r, "flat binary");
        return new LoadedKernel(LoadedKernel.Kind.FLAT, address, OptionalLong.empty(), address, r.end(), List.of(r),
                Optional.empty());
    }

    @Override
    public LoadedKernel load(GuestMemory memory, byte[] code) {
        LoadedKernel k = inspect(memory, code);
        memory.write(address, code);
        return k;
    }

    /** Loads {@code code} at {@code address}, writes the GDT, and returns 32-bit protected-mode state (paging off, EBX 0). */
    public static BootCpuState protectedMode32(GuestMemory memory, byte[] code, long address) {
        LoadedKernel k = new FlatBinaryLoader(address).inspect(memory, code);
        Checks.ram(memory, MicrovmLayout.GDT_START, MicrovmLayout.IDT_START + 8 - MicrovmLayout.GDT_START, "boot GDT");
        BootCpuState state = BootCpuState.protectedMode32(k.entry(), 0);
        memory.write(address, code);
        BootGdt.write(memory);
        return state;
    }

    /** Loads {@code code} at {@code address}, writes the GDT and a 4 GiB identity map, and returns long-mode state. */
    public static BootCpuState longMode64(GuestMemory memory, byte[] code, long address) {
        LoadedKernel k = new FlatBinaryLoader(address).inspect(memory, code);
        Checks.ram(memory, MicrovmLayout.GDT_START, MicrovmLayout.IDT_START + 8 - MicrovmLayout.GDT_START, "boot GDT");
        Checks.ram(memory, MicrovmLayout.PML4_START, MicrovmLayout.PAGE_TABLES_END - MicrovmLayout.PML4_START, "page tables");
        if (k.kernelEnd() > PageTables.mappedBytes(IDENTITY_MAP_GIB)) {
            throw new BootException("flat binary " + k.footprint() + " is above the identity-mapped 4 GiB");
        }
        memory.write(address, code);
        BootGdt.write(memory);
        long cr3 = PageTables.writeIdentityMap(memory, IDENTITY_MAP_GIB);
        return BootCpuState.longMode64(k.entry(), 0, cr3);
    }
}
