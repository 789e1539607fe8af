package dev.kindling.boot;

import dev.kindling.memory.GuestMemory;

/**
 * The boot GDT at {@link MicrovmLayout#GDT_START}, laid out like the one in Linux's
 * {@code arch/x86/boot/compressed/head_64.S} so that both protocols find the selectors they expect:
 *
 * <pre>
 * 0x00  null
 * 0x08  32-bit code, flat 4 GiB, execute/read   (PVH entry)
 * 0x10  64-bit code, execute/read               (__BOOT_CS of the 64-bit boot protocol)
 * 0x18  data, flat 4 GiB, read/write            (__BOOT_DS)
 * 0x20  TSS, base 0, limit 0x67, busy; 16 bytes (a 64-bit system descriptor; its upper half is zero)
 * </pre>
 *
 * The IDT at {@link MicrovmLayout#IDT_START} is one zero (not present) gate with limit 7, as Firecracker sets it:
 * any exception before the guest loads its own IDT ends in a triple fault, which the VMM sees as a shutdown.
 */
public final class BootGdt {
    public static final int CODE32_SELECTOR = 0x08;
    public static final int CODE64_SELECTOR = 0x10;
    public static final int DATA_SELECTOR = 0x18;
    public static final int TSS_SELECTOR = 0x20;

    /** The descriptors in table order; the TSS takes two slots. */
    private static final long[] TABLE = {
        0,
        descriptor(0xc09b, 0, 0xfffff), // G, D/B, P, S, type 0xb
        descriptor(0xa09b, 0, 0xfffff), // G, L, P, S, type 0xb
        descriptor(0xc093, 0, 0xfffff), // G, D/B, P, S, type 0x3
        descriptor(0x008b, 0, 0x67), // P, type 0xb (busy TSS)
        0, // upper half of the 16-byte TSS descriptor
    };

    private BootGdt() {
    }

    /**
     * A segment descriptor: {@code flags} holds the access byte in bits 0-7 (type, S, DPL, P) and AVL, L, D/B, G in
     * bits 12-15, the layout they have in descriptor bits 40-55.
     */
    public static long descriptor(int flags, long base, long limit) {
        return (base & 0xff00_0000L) << 32
                | (long) (flags & 0xf0ff) << 40
                | (limit & 0xf_0000L) << 32
                | (base & 0x00ff_ffffL) << 16
                | (limit & 0xffffL);
    }

    /** Decodes a descriptor as the CPU would load it with {@code selector}. */
    public static BootCpuState.Segment decode(long d, int selector) {
        long base = (d >>> 16 & 0xff_ffffL) | (d >>> 56 & 0xff) << 24;
        long rawLimit = (d & 0xffff) | (d >>> 48 & 0xf) << 16;
        boolean g = (d >>> 55 & 1) != 0;
        long limit = g ? rawLimit << 12 | 0xfff : rawLimit;
        return new BootCpuState.Segment(base, limit, selector, (int) (d >>> 40 & 0xf), (d >>> 47 & 1) != 0,
                (int) (d >>> 45 & 3), (d >>> 54 & 1) != 0, (d >>> 44 & 1) != 0, (d >>> 53 & 1) != 0, g,
                (d >>> 52 & 1) != 0, false);
    }

    /** The descriptor for {@code selector}. */
    public static long entry(int selector) {
        return TABLE[selector >> 3];
    }

    /** The segment register contents for {@code selector}. */
    public static BootCpuState.Segment segment(int selector) {
        return decode(entry(selector), selector);
    }

    public static int entries() {
        return TABLE.length;
    }

    public static BootCpuState.DescriptorTable gdtr() {
        return new BootCpuState.DescriptorTable(MicrovmLayout.GDT_START, TABLE.length * 8 - 1);
    }

    public static BootCpuState.DescriptorTable idtr() {
        return new BootCpuState.DescriptorTable(MicrovmLayout.IDT_START, 7);
    }

    /** Writes the GDT and the empty IDT into guest memory. */
    public static void write(GuestMemory memory) {
        Checks.ram(memory, MicrovmLayout.GDT_START, MicrovmLayout.IDT_START + 8 - MicrovmLayout.GDT_START, "boot GDT and IDT");
        for (int i = 0; i < TABLE.length; i++) {
            memory.write64(MicrovmLayout.GDT_START + 8L * i, TABLE[i]);
        }
        memory.write64(MicrovmLayout.IDT_START, 0);
    }
}
