package dev.kindling.boot;

import static dev.kindling.boot.MicrovmLayout.hex;

import dev.kindling.memory.GuestMemory;

/** Where an initrd goes: page-aligned at the top of the RAM below the MMIO hole, above the kernel. */
final class Initrd {
    private Initrd() {
    }

    /** Places {@code size} bytes so that the initrd ends at or below {@code limit} (exclusive). */
    static AddressRange place(GuestMemory memory, LoadedKernel kernel, long size, long limit) {
        if (size <= 0) {
            throw new BootException("initrd is empty");
        }
        long top = Math.min(MicrovmLayout.lowRamEnd(memory), limit);
        long floor = MicrovmLayout.alignUp(Math.max(kernel.kernelEnd(), MicrovmLayout.HIMEM_START), MicrovmLayout.PAGE_SIZE);
        if (size > top - floor) {
            throw new BootException("kernel and initrd do not fit in RAM: the kernel ends at " + hex(kernel.kernelEnd())
                    + ", the initrd needs " + hex(size) + " bytes and must end by " + hex(top)
                    + " (" + hex(Math.max(0, top - floor)) + " bytes free)");
        }
        AddressRange r = new AddressRange(MicrovmLayout.alignDown(top - size, MicrovmLayout.PAGE_SIZE), size);
        Checks.placeable(memory, r, "initrd");
        return r;
    }

    static void write(GuestMemory memory, AddressRange at, byte[] initrd) {
        memory.write(at.start(), initrd);
    }
}
