package dev.kindling.boot;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * The Linux x86 boot protocol setup header (Documentation/arch/x86/boot.rst): the bytes of a bzImage from
 * offset 0x1f1 to the header's end ({@code 0x202 + byte at 0x201}), which the 64-bit boot protocol copies into
 * {@code boot_params} at the same offset. Accessors take the header's offsets as boot.rst lists them; a field
 * beyond the header's end reads as 0.
 */
public final class SetupHeader {
    /** Offset of the header in the image and in {@code boot_params}. */
    public static final int OFFSET = 0x1f1;
    /** {@code boot_params} offset of {@code edd_mbr_sig_buffer}, the first field after the header. */
    public static final int MAX_END = 0x290;

    public static final int SETUP_SECTS = 0x1f1;
    public static final int SYSSIZE = 0x1f4;
    public static final int VID_MODE = 0x1fa;
    public static final int BOOT_FLAG = 0x1fe;
    public static final int JUMP = 0x200;
    public static final int HEADER = 0x202;
    public static final int VERSION = 0x206;
    public static final int TYPE_OF_LOADER = 0x210;
    public static final int LOADFLAGS = 0x211;
    public static final int CODE32_START = 0x214;
    public static final int RAMDISK_IMAGE = 0x218;
    public static final int RAMDISK_SIZE = 0x21c;
    public static final int HEAP_END_PTR = 0x224;
    public static final int CMD_LINE_PTR = 0x228;
    public static final int INITRD_ADDR_MAX = 0x22c;
    public static final int KERNEL_ALIGNMENT = 0x230;
    public static final int RELOCATABLE_KERNEL = 0x234;
    public static final int XLOADFLAGS = 0x236;
    public static final int CMDLINE_SIZE = 0x238;
    /** Physical address of the first {@code struct setup_data} (protocol 2.09 and later). */
    public static final int SETUP_DATA = 0x250;
    public static final int PREF_ADDRESS = 0x258;
    public static final int INIT_SIZE = 0x260;

    public static final int BOOT_FLAG_MAGIC = 0xaa55;
    /** "HdrS", little-endian. */
    public static final int HEADER_MAGIC = 0x53726448;
    public static final int LOADED_HIGH = 0x01;
    public static final int CAN_USE_HEAP = 0x80;
    public static final int XLF_KERNEL_64 = 0x01;
    public static final int XLF_CAN_BE_LOADED_ABOVE_4G = 0x02;

    private final byte[] bytes;

    private SetupHeader(byte[] bytes) {
        this.bytes = bytes;
    }

    /** The header at offset 0x1f1 of {@code image}; checks only that it is there in full. */
    static SetupHeader fromImage(byte[] image) {
        if (image.length < HEADER + 4) {
            throw new BootException("bzImage truncated: " + image.length + " bytes, too short for a setup header");
        }
        int end = Math.min(0x202 + (image[0x201] & 0xff), MAX_END);
        if (image.length < end) {
            throw new BootException("bzImage truncated: the setup header ends at 0x" + Integer.toHexString(end)
                    + " but the image has " + image.length + " bytes");
        }
        return new SetupHeader(Arrays.copyOfRange(image, OFFSET, end));
    }

    /**
     * A header for a kernel that has none (an ELF vmlinux entered at its 64-bit entry), as Firecracker makes one:
     * the boot flag and "HdrS" magic, protocol 2.12 with {@code XLF_KERNEL_64}, loaded high, 16 MiB alignment,
     * {@code initrd_addr_max} 0x7fffffff and {@code cmdline_size} {@link MicrovmLayout#CMDLINE_MAX_SIZE} - 1.
     */
    public static SetupHeader synthetic() {
        ByteBuffer b = ByteBuffer.allocate(0x26c - OFFSET).order(ByteOrder.LITTLE_ENDIAN);
        b.putShort(BOOT_FLAG - OFFSET, (short) BOOT_FLAG_MAGIC);
        b.put(0x201 - OFFSET, (byte) (0x26c - 0x202));
        b.putInt(HEADER - OFFSET, HEADER_MAGIC);
        b.putShort(VERSION - OFFSET, (short) 0x020c);
        b.put(LOADFLAGS - OFFSET, (byte) LOADED_HIGH);
        b.putInt(CODE32_START - OFFSET, (int) MicrovmLayout.HIMEM_START);
        b.putInt(INITRD_ADDR_MAX - OFFSET, 0x7fffffff);
        b.putInt(KERNEL_ALIGNMENT - OFFSET, 0x0100_0000);
        b.putShort(XLOADFLAGS - OFFSET, (short) XLF_KERNEL_64);
        b.putInt(CMDLINE_SIZE - OFFSET, MicrovmLayout.CMDLINE_MAX_SIZE - 1);
        return new SetupHeader(b.array());
    }

    /** A copy of the header bytes, for {@code boot_params} offset 0x1f1. */
    public byte[] bytes() {
        return bytes.clone();
    }

    /** Length in bytes, from 0x1f1. */
    public int length() {
        return bytes.length;
    }

    public int u8(int offset) {
        int i = offset - OFFSET;
        return i >= 0 && i < bytes.length ? bytes[i] & 0xff : 0;
    }

    public int u16(int offset) {
        return u8(offset) | u8(offset + 1) << 8;
    }

    /** The 32-bit field at {@code offset}, zero-extended. */
    public long u32(int offset) {
        return (u16(offset) | (long) u16(offset + 2) << 16) & 0xffffffffL;
    }

    public long u64(int offset) {
        return u32(offset) | u32(offset + 4) << 32;
    }

    /** Boot protocol version, e.g. 0x020f for 2.15. */
    public int version() {
        return u16(VERSION);
    }

    /** Version as "major.minor". */
    public String versionString() {
        return (version() >> 8) + "." + String.format("%02d", version() & 0xff);
    }

    /** Setup sectors; 0 means 4 (boot.rst). */
    public int setupSects() {
        int s = u8(SETUP_SECTS);
        return s == 0 ? 4 : s;
    }

    public int loadflags() {
        return u8(LOADFLAGS);
    }

    public int xloadflags() {
        return version() >= 0x020c ? u16(XLOADFLAGS) : 0;
    }

    /** Highest address the initrd may occupy; 0x37ffffff before protocol 2.03. */
    public long initrdAddrMax() {
        return version() >= 0x0203 ? u32(INITRD_ADDR_MAX) : 0x37ffffffL;
    }

    /** Longest command line the kernel takes, without the NUL; 255 before protocol 2.06. */
    public long cmdlineSize() {
        return version() >= 0x0206 ? u32(CMDLINE_SIZE) : 255;
    }

    public long kernelAlignment() {
        return version() >= 0x0205 ? u32(KERNEL_ALIGNMENT) : 0;
    }

    public boolean relocatable() {
        return version() >= 0x0205 && u8(RELOCATABLE_KERNEL) != 0;
    }

    /** Preferred load address (protocol 2.10+), else 0. */
    public long prefAddress() {
        return version() >= 0x020a ? u64(PREF_ADDRESS) : 0;
    }

    /** Linear memory the kernel needs from its run address (protocol 2.10+), else 0. */
    public long initSize() {
        return version() >= 0x020a ? u32(INIT_SIZE) : 0;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SetupHeader h && Arrays.equals(bytes, h.bytes);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(bytes);
    }

    @Override
    public String toString() {
        return "SetupHeader[protocol " + versionString() + ", " + bytes.length + " bytes]";
    }
}
