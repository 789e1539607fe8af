package dev.kindling.boot;

import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * What a {@link KernelLoader} placed (or, from {@code inspect}, would place) in guest memory.
 *
 * @param kind        the image format
 * @param entry       the ELF {@code e_entry}, the bzImage 64-bit entry (load address + 0x200), or a flat binary's address
 * @param pvhEntry    the 32-bit PVH entry from the {@code XEN_ELFNOTE_PHYS32_ENTRY} note, for {@link Kind#ELF_PVH}
 * @param loadAddress the lowest guest-physical address written
 * @param kernelEnd   one past the highest address the kernel occupies: its segments, and for a bzImage also the
 *                    {@code init_size} area it decompresses into; an initrd goes above this
 * @param segments    the ranges written (for ELF: each PT_LOAD's {@code [p_paddr, p_paddr + p_memsz)})
 * @param setupHeader the bzImage setup header, to be copied into the zero page
 */
public record LoadedKernel(Kind kind, long entry, OptionalLong pvhEntry, long loadAddress, long kernelEnd,
                           List<AddressRange> segments, Optional<SetupHeader> setupHeader) {
    public enum Kind {
        /** ELF (vmlinux) with a PVH entry note: boot with {@link PvhBoot}. */
        ELF_PVH,
        /** ELF without a PVH note: boot with {@link LinuxBoot}'s 64-bit entry. */
        ELF,
        /** bzImage: boot with {@link LinuxBoot}'s 64-bit entry. */
        BZIMAGE,
        /** Raw code from {@link FlatBinaryLoader}. */
        FLAT
    }

    public LoadedKernel {
        segments = List.copyOf(segments);
        if (pvhEntry.isPresent() != (kind == Kind.ELF_PVH)) {
            throw new IllegalArgumentException("a PVH entry goes with kind ELF_PVH only");
        }
        if (setupHeader.isPresent() != (kind == Kind.BZIMAGE)) {
            throw new IllegalArgumentException("a setup header goes with kind BZIMAGE only");
        }
    }

    /** All the memory the kernel claims: {@code [loadAddress, kernelEnd)}. */
    public AddressRange footprint() {
        return new AddressRange(loadAddress, kernelEnd - loadAddress);
    }
}
