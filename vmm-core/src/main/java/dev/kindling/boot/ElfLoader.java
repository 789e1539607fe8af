package dev.kindling.boot;

import static dev.kindling.boot.MicrovmLayout.hex;

import dev.kindling.memory.GuestMemory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * Loads a little-endian x86 ELF executable (ELF64 x86-64 such as a Linux {@code vmlinux}, or ELF32 i386): every
 * {@code PT_LOAD} segment goes to its physical address {@code p_paddr}, file bytes then zeros up to
 * {@code p_memsz}. The {@code PT_NOTE} segments are searched for the PVH entry note: name "Xen", type
 * {@link #XEN_ELFNOTE_PHYS32_ENTRY}, a 4- or 8-byte descriptor holding a 32-bit physical address.
 */
public final class ElfLoader implements KernelLoader {
    /** Note type of the 32-bit PVH entry (xen/include/public/elfnote.h). */
    public static final int XEN_ELFNOTE_PHYS32_ENTRY = 18;

    static final int PT_LOAD = 1;
    static final int PT_NOTE = 4;
    static final int ET_EXEC = 2;
    static final int EM_386 = 3;
    static final int EM_X86_64 = 62;

    public ElfLoader() {
    }

    /** True if {@code image} starts with the ELF magic. */
    public static boolean isElf(byte[] image) {
        return image.length >= 4 && image[0] == 0x7f && image[1] == 'E' && image[2] == 'L' && image[3] == 'F';
    }

    @Override
    public LoadedKernel inspect(GuestMemory memory, byte[] image) {
        return plan(memory, image).kernel;
    }

    @Override
    public LoadedKernel load(GuestMemory memory, byte[] image) {
        Plan plan = plan(memory, image);
        Piece.writeAll(memory, image, plan.pieces);
        return plan.kernel;
    }

    private record Plan(LoadedKernel kernel, List<Piece> pieces) {
    }

    private record Phdr(int index, int type, long offset, long paddr, long filesz, long memsz, long align) {
    }

    private static Plan plan(GuestMemory memory, byte[] image) {
        if (!isElf(image)) {
            throw new BootException("not an ELF image: bad magic");
        }
        if (image.length < 0x34) {
            throw new BootException("ELF image truncated: " + image.length + " bytes, shorter than an ELF header");
        }
        ByteBuffer b = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
        int elfClass = image[4];
        if (elfClass != 1 && elfClass != 2) {
            throw new BootException("ELF class " + elfClass + " is neither ELF32 nor ELF64");
        }
        boolean is64 = elfClass == 2;
        if (image[5] != 1) {
            throw new BootException("ELF image is not little-endian (EI_DATA " + image[5] + ")");
        }
        if (is64 && image.length < 0x40) {
            throw new BootException("ELF image truncated: " + image.length + " bytes, shorter than an ELF64 header");
        }
        int type = b.getShort(0x10) & 0xffff;
        int machine = b.getShort(0x12) & 0xffff;
        if (machine != EM_X86_64 && machine != EM_386) {
            throw new BootException("ELF machine " + machine + " is not x86 (EM_386 = 3, EM_X86_64 = 62)");
        }
        if (type != ET_EXEC) {
            throw new BootException("ELF type " + type + " is not an executable (ET_EXEC); relocatable kernels are not supported");
        }
        long entry = is64 ? b.getLong(0x18) : b.getInt(0x18) & 0xffffffffL;
        long phoff = is64 ? b.getLong(0x20) : b.getInt(0x1c) & 0xffffffffL;
        int phentsize = b.getShort(is64 ? 0x36 : 0x2a) & 0xffff;
        int phnum = b.getShort(is64 ? 0x38 : 0x2c) & 0xffff;
        int wantPhentsize = is64 ? 56 : 32;
        if (phentsize != wantPhentsize) {
            throw new BootException("ELF program header size " + phentsize + ", expected " + wantPhentsize);
        }
        if (phnum == 0xffff) {
            throw new BootException("ELF images with 65535 or more program headers are not supported");
        }
        if (phoff < 0 || phoff + (long) phnum * phentsize > image.length) {
            throw new BootException("ELF image truncated: " + phnum + " program headers at " + hex(phoff)
                    + " extend past the end of the " + image.length + "-byte image");
        }

        List<Phdr> phdrs = new ArrayList<>();
        for (int i = 0; i < phnum; i++) {
            int o = (int) (phoff + (long) i * phentsize);
            if (is64) {
                phdrs.add(new Phdr(i, b.getInt(o), b.getLong(o + 8), b.getLong(o + 0x18), b.getLong(o + 0x20),
                        b.getLong(o + 0x28), b.getLong(o + 0x30)));
            } else {
                phdrs.add(new Phdr(i, b.getInt(o), u32(b, o + 4), u32(b, o + 0xc), u32(b, o + 0x10), u32(b, o + 0x14),
                        u32(b, o + 0x1c)));
            }
        }

        List<Piece> pieces = new ArrayList<>();
        long lowest = Long.MAX_VALUE;
        long highest = 0;
        OptionalLong pvh = OptionalLong.empty();
        for (Phdr p : phdrs) {
            if (p.type == PT_NOTE && pvh.isEmpty()) {
                checkInFile(image, p, "note segment");
                pvh = findPvhEntry(b, p);
            }
            if (p.type != PT_LOAD || p.memsz == 0) {
                continue;
            }
            checkInFile(image, p, "segment");
            if (Long.compareUnsigned(p.filesz, p.memsz) > 0) {
                throw new BootException("ELF segment " + p.index + " has p_filesz " + hex(p.filesz) + " > p_memsz " + hex(p.memsz));
            }
            if (p.paddr < 0 || p.memsz < 0 || p.paddr + p.memsz < p.paddr) {
                throw new BootException("ELF segment " + p.index + " at " + hex(p.paddr) + " +" + hex(p.memsz)
                        + " is outside guest RAM");
            }
            AddressRange r = new AddressRange(p.paddr, p.memsz);
            Checks.placeable(memory, r, "ELF segment " + p.index);
            pieces.add(new Piece((int) p.offset, (int) p.filesz, p.paddr, p.memsz));
            lowest = Math.min(lowest, r.start());
            highest = Math.max(highest, r.end());
        }
        if (pieces.isEmpty()) {
            throw new BootException("ELF image has no loadable (PT_LOAD) segments");
        }
        List<AddressRange> segments = pieces.stream().map(Piece::range).toList();
        if (pvh.isPresent()) {
            long e = pvh.getAsLong();
            if (segments.stream().noneMatch(s -> s.contains(e))) {
                throw new BootException("PVH entry " + hex(e) + " is outside the loaded segments");
            }
        } else if (segments.stream().noneMatch(s -> s.contains(entry))) {
            throw new BootException("ELF entry point " + hex(entry) + " is outside the loaded segments and there is"
                    + " no PVH note");
        }
        LoadedKernel k = new LoadedKernel(pvh.isPresent() ? LoadedKernel.Kind.ELF_PVH : LoadedKernel.Kind.ELF, entry,
                pvh, lowest, highest, segments, Optional.empty());
        return new Plan(k, List.copyOf(pieces));
    }

    private static long u32(ByteBuffer b, int offset) {
        return b.getInt(offset) & 0xffffffffL;
    }

    private static void checkInFile(byte[] image, Phdr p, String what) {
        if (p.offset < 0 || p.filesz < 0 || p.offset + p.filesz < p.offset || p.offset + p.filesz > image.length) {
            throw new BootException("ELF image truncated: " + what + " " + p.index + " needs file bytes ["
                    + hex(p.offset) + ", +" + hex(p.filesz) + ") of a " + image.length + "-byte image");
        }
    }

    /** The PVH entry in one note segment, if it has one. */
    private static OptionalLong findPvhEntry(ByteBuffer b, Phdr p) {
        long align = p.align == 8 ? 8 : 4;
        long pos = p.offset;
        long end = p.offset + p.filesz;
        while (end - pos >= 12) {
            long namesz = b.getInt((int) pos) & 0xffffffffL;
            long descsz = b.getInt((int) pos + 4) & 0xffffffffL;
            int type = b.getInt((int) pos + 8);
            long name = pos + 12;
            long desc = name + alignUp(namesz, align);
            if (desc > end || desc + descsz > end) {
                throw new BootException("ELF note segment " + p.index + " is malformed: a note at " + hex(pos)
                        + " (name " + namesz + " bytes, descriptor " + descsz + " bytes) runs past the segment's end " + hex(end));
            }
            if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 && b.get((int) name) == 'X'
                    && b.get((int) name + 1) == 'e' && b.get((int) name + 2) == 'n' && b.get((int) name + 3) == 0) {
                long entry;
                if (descsz == 4) {
                    entry = b.getInt((int) desc) & 0xffffffffL;
                } else if (descsz == 8) {
                    entry = b.getLong((int) desc);
                    if (entry < 0 || entry > 0xffffffffL) {
                        throw new BootException("PVH note entry " + Long.toUnsignedString(entry, 16)
                                + " is not a 32-bit physical address");
                    }
                } else {
                    throw new BootException("PVH note (Xen, type 18) has a " + descsz
                            + "-byte descriptor; expected a 4- or 8-byte entry address");
                }
                return OptionalLong.of(entry);
            }
            pos = desc + alignUp(descsz, align);
        }
        return OptionalLong.empty();
    }

    private static long alignUp(long v, long align) {
        return (v + align - 1) & -align;
    }
}
