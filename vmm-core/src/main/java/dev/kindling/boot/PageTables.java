package dev.kindling.boot;

import static dev.kindling.boot.MicrovmLayout.PDE_START;
import static dev.kindling.boot.MicrovmLayout.PDPTE_START;
import static dev.kindling.boot.MicrovmLayout.PML4_START;

import dev.kindling.memory.GuestMemory;

/**
 * Identity-mapping page tables for entering long mode: one PML4 at {@link MicrovmLayout#PML4_START}, one PDPT at
 * {@link MicrovmLayout#PDPTE_START}, and one page directory of 512 2 MiB pages per GiB from
 * {@link MicrovmLayout#PDE_START}. Entries are present, writable, supervisor.
 */
public final class PageTables {
    public static final long PRESENT = 1;
    public static final long WRITABLE = 1 << 1;
    /** Page-size bit of a PDE: a 2 MiB page. */
    public static final long PAGE_SIZE_2M = 1 << 7;
    /** Largest map: four page directories fit before {@link MicrovmLayout#PAGE_TABLES_END}. */
    public static final int MAX_GIB = 4;

    private PageTables() {
    }

    /** Writes an identity map of the first {@code gib} GiB (1 to 4) and returns the PML4 address, the CR3 value. */
    public static long writeIdentityMap(GuestMemory memory, int gib) {
        if (gib < 1 || gib > MAX_GIB) {
            throw new IllegalArgumentException("identity map of " + gib + " GiB; 1 to " + MAX_GIB + " supported");
        }
        Checks.ram(memory, PML4_START, MicrovmLayout.PAGE_TABLES_END - PML4_START, "boot page tables");
        memory.slice(PML4_START, 0x1000).fill((byte) 0);
        memory.slice(PDPTE_START, 0x1000).fill((byte) 0);
        memory.write64(PML4_START, PDPTE_START | PRESENT | WRITABLE);
        for (int g = 0; g < gib; g++) {
            long pd = PDE_START + 0x1000L * g;
            memory.write64(PDPTE_START + 8L * g, pd | PRESENT | WRITABLE);
            for (int i = 0; i < 512; i++) {
                long address = ((long) g << 30) | ((long) i << 21);
                memory.write64(pd + 8L * i, address | PRESENT | WRITABLE | PAGE_SIZE_2M);
            }
        }
        return PML4_START;
    }

    /** The size {@link #writeIdentityMap} covers for {@code gib}. */
    public static long mappedBytes(int gib) {
        return (long) gib << 30;
    }
}
