package dev.kindling.boot;

import static dev.kindling.boot.MicrovmLayout.hex;

import dev.kindling.memory.GuestMemory;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * Loads a Linux bzImage for the 64-bit boot protocol (Documentation/arch/x86/boot.rst): checks the setup header
 * (boot flag 0xAA55 at 0x1fe, "HdrS" at 0x202, protocol 2.06 or later, {@code LOADED_HIGH}, and from 2.12
 * {@code XLF_KERNEL_64}), then copies the protected-mode kernel, which follows the {@code (setup_sects + 1) * 512}
 * bytes of real-mode setup, to {@link #LOAD_ADDRESS} as Firecracker and linux-loader do. The 64-bit entry is
 * 0x200 bytes into it.
 *
 * <p>Protocols 2.06 to 2.11 have no {@code xloadflags}; their x86-64 kernels already had the 64-bit entry at
 * 0x200, so the loader assumes it. From protocol 2.10 the kernel states how much memory it needs to decompress
 * ({@code init_size} from {@code max(load address aligned to kernel_alignment, pref_address)} for a relocatable
 * kernel, from {@code pref_address} otherwise); that area must be RAM and counts towards {@code kernelEnd}, so an
 * initrd is never placed where the kernel will decompress.
 */
public final class BzImageLoader implements KernelLoader {
    /** Where the protected-mode kernel goes. */
    public static final long LOAD_ADDRESS = MicrovmLayout.HIMEM_START;
    /** Offset of the 64-bit entry point in the protected-mode kernel. */
    public static final long ENTRY_64_OFFSET = 0x200;
    /** Oldest supported boot protocol: 2.06 has {@code cmdline_size}. */
    public static final int MIN_VERSION = 0x0206;

    public BzImageLoader() {
    }

    /** True if {@code image} has the boot flag and the "HdrS" magic. */
    public static boolean isBzImage(byte[] image) {
        return image.length >= SetupHeader.HEADER + 4
                && u16(image, SetupHeader.BOOT_FLAG) == SetupHeader.BOOT_FLAG_MAGIC
                && u32(image, SetupHeader.HEADER) == SetupHeader.HEADER_MAGIC;
    }

    @Override
    public LoadedKernel inspect(GuestMemory memory, byte[] image) {
        return plan(memory, image).kernel;
    }

    @Override
    public LoadedKernel load(GuestMemory memory, byte[] image) {
        Plan plan = plan(memory, image);
        Piece.writeAll(memory, image, List.of(plan.piece));
        return plan.kernel;
    }

    private record Plan(LoadedKernel kernel, Piece piece) {
    }

    private static Plan plan(GuestMemory memory, byte[] image) {
        if (image.length < SetupHeader.HEADER + 4) {
            throw new BootException("bzImage truncated: " + image.length + " bytes, too short for a setup header");
        }
        if (u16(image, SetupHeader.BOOT_FLAG) != SetupHeader.BOOT_FLAG_MAGIC) {
            throw new BootException("not a bzImage: boot flag at 0x1fe is " + hex(u16(image, SetupHeader.BOOT_FLAG))
                    + ", expected 0xaa55");
        }
        if (u32(image, SetupHeader.HEADER) != SetupHeader.HEADER_MAGIC) {
            throw new BootException("not a bzImage: no \"HdrS\" magic at 0x202");
        }
        SetupHeader h = SetupHeader.fromImage(image);
        if (h.version() < MIN_VERSION) {
            throw new BootException("unsupported boot protocol " + h.versionString() + "; need 2.06 or later");
        }
        if ((h.loadflags() & SetupHeader.LOADED_HIGH) == 0) {
            throw new BootException("kernel is a zImage (LOADED_HIGH clear in loadflags); only bzImage is supported");
        }
        if (h.version() >= 0x020c && (h.xloadflags() & SetupHeader.XLF_KERNEL_64) == 0) {
            throw new BootException("bzImage has no 64-bit entry point (XLF_KERNEL_64 clear in xloadflags)");
        }
        int setupSize = (h.setupSects() + 1) * 512;
        if (image.length <= setupSize) {
            throw new BootException("bzImage truncated: " + image.length + " bytes, but the setup code alone is "
                    + setupSize + " bytes");
        }
        int payload = image.length - setupSize;
        long syssize = h.u32(SetupHeader.SYSSIZE) * 16;
        if (syssize > payload) {
            throw new BootException("bzImage truncated: syssize says the protected-mode kernel has " + syssize
                    + " bytes, the image holds " + payload);
        }
        if (payload <= ENTRY_64_OFFSET) {
            throw new BootException("bzImage truncated: protected-mode kernel of " + payload + " bytes has no 64-bit entry");
        }
        AddressRange code = new AddressRange(LOAD_ADDRESS, payload);
        Checks.placeable(memory, code, "bzImage protected-mode kernel");
        long start = code.start();
        long end = code.end();
        long initSize = h.initSize();
        if (initSize > 0) {
            long runAt = h.prefAddress();
            if (h.relocatable()) {
                long align = h.kernelAlignment();
                long aligned = align > 0 && Long.bitCount(align) == 1 ? MicrovmLayout.alignUp(LOAD_ADDRESS, align) : LOAD_ADDRESS;
                runAt = Math.max(aligned, runAt);
            }
            AddressRange decompress = new AddressRange(runAt, initSize);
            Checks.placeable(memory, decompress, "bzImage decompression area (init_size from pref_address)");
            start = Math.min(start, decompress.start());
            end = Math.max(end, decompress.end());
        }
        Piece piece = new Piece(setupSize, payload, LOAD_ADDRESS, payload);
        LoadedKernel k = new LoadedKernel(LoadedKernel.Kind.BZIMAGE, LOAD_ADDRESS + ENTRY_64_OFFSET, OptionalLong.empty(),
                start, end, List.of(code), Optional.of(h));
        return new Plan(k, piece);
    }

    private static int u16(byte[] b, int o) {
        return (b[o] & 0xff) | (b[o + 1] & 0xff) << 8;
    }

    private static int u32(byte[] b, int o) {
        return u16(b, o) | u16(b, o + 2) << 16;
    }
}
