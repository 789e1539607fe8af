package dev.kindling.boot;

import dev.kindling.memory.GuestMemory;
import dev.kindling.testing.BoundedProcess;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/** Kernel images built in the tests: hand-made ELF and bzImage bytes, and gcc-built ELF files. */
final class Fixtures {
    /** The NUL-terminated string at {@code gpa}. */
    static String cString(GuestMemory mem, long gpa) {
        StringBuilder s = new StringBuilder();
        for (long a = gpa; mem.read8(a) != 0; a++) {
            s.append((char) mem.read8(a));
        }
        return s.toString();
    }

    private Fixtures() {
    }

    /** A PT_LOAD segment: {@code data} at {@code paddr}, zero-filled up to {@code memsz}. */
    record Seg(long paddr, byte[] data, long memsz) {
        Seg(long paddr, byte[] data) {
            this(paddr, data, data.length);
        }
    }

    /** One ELF note with 4-byte alignment. */
    static byte[] note(String name, int type, byte[] desc) {
        byte[] n = (name + "\0").getBytes(StandardCharsets.US_ASCII);
        ByteBuffer b = ByteBuffer.allocate(12 + align4(n.length) + align4(desc.length)).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(n.length).putInt(desc.length).putInt(type);
        b.put(n).position(12 + align4(n.length));
        b.put(desc);
        return b.array();
    }

    static byte[] pvhNote64(long entry) {
        return note("Xen", 18, ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(entry).array());
    }

    static byte[] pvhNote32(long entry) {
        return note("Xen", 18, ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt((int) entry).array());
    }

    private static int align4(int v) {
        return (v + 3) & ~3;
    }

    /** An ELF executable with the given segments and one PT_NOTE segment holding {@code notes} (if any). */
    static byte[] elf(boolean is64, long entry, List<Seg> segs, List<byte[]> notes) {
        int ehsize = is64 ? 64 : 52;
        int phentsize = is64 ? 56 : 32;
        ByteArrayOutputStream noteBytes = new ByteArrayOutputStream();
        notes.forEach(noteBytes::writeBytes);
        int phnum = segs.size() + (notes.isEmpty() ? 0 : 1);
        int dataStart = ehsize + phnum * phentsize;
        List<long[]> ph = new ArrayList<>(); // type, offset, paddr, filesz, memsz, align
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        int off = align16(dataStart);
        body.writeBytes(new byte[off - dataStart]);
        for (Seg s : segs) {
            ph.add(new long[] {1, off, s.paddr, s.data.length, s.memsz, 0x10});
            body.writeBytes(s.data);
            int next = align16(off + s.data.length);
            body.writeBytes(new byte[next - off - s.data.length]);
            off = next;
        }
        if (!notes.isEmpty()) {
            ph.add(new long[] {4, off, 0, noteBytes.size(), noteBytes.size(), 4});
            body.writeBytes(noteBytes.toByteArray());
        }
        ByteBuffer b = ByteBuffer.allocate(dataStart + body.size()).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {0x7f, 'E', 'L', 'F', (byte) (is64 ? 2 : 1), 1, 1, 0});
        b.position(0x10);
        b.putShort((short) 2).putShort((short) (is64 ? 62 : 3)).putInt(1);
        if (is64) {
            b.putLong(entry).putLong(ehsize).putLong(0).putInt(0).putShort((short) ehsize).putShort((short) phentsize)
                    .putShort((short) phnum).putShort((short) 64).putShort((short) 0).putShort((short) 0);
        } else {
            b.putInt((int) entry).putInt(ehsize).putInt(0).putInt(0).putShort((short) ehsize).putShort((short) phentsize)
                    .putShort((short) phnum).putShort((short) 40).putShort((short) 0).putShort((short) 0);
        }
        for (long[] p : ph) {
            if (is64) {
                b.putInt((int) p[0]).putInt(5).putLong(p[1]).putLong(p[2]).putLong(p[2]).putLong(p[3]).putLong(p[4]).putLong(p[5]);
            } else {
                b.putInt((int) p[0]).putInt((int) p[1]).putInt((int) p[2]).putInt((int) p[2]).putInt((int) p[3])
                        .putInt((int) p[4]).putInt(5).putInt((int) p[5]);
            }
        }
        b.put(body.toByteArray());
        return b.array();
    }

    private static int align16(int v) {
        return (v + 15) & ~15;
    }

    /** Bytes 0, 1, 2, ... (mod 251): recognisable and never all zero. */
    static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) ((i + seed) % 251 + 1);
        }
        return b;
    }

    static final int BZ_PREF_ADDRESS = 0x100_0000;
    static final int BZ_INIT_SIZE = 0x100_0000;

    /**
     * A bzImage: {@code setupSects} sectors of setup after the boot sector, then {@code payload}; header fields as a
     * modern x86-64 kernel has them (protocol {@code version}, relocatable, 2 MiB alignment, pref_address 16 MiB,
     * init_size 16 MiB, XLF_KERNEL_64), then {@code tweak} applied to the image buffer.
     */
    static byte[] bzImage(int version, int setupSects, byte[] payload, Consumer<ByteBuffer> tweak) {
        int setupSize = ((setupSects == 0 ? 4 : setupSects) + 1) * 512;
        ByteBuffer b = ByteBuffer.allocate(setupSize + payload.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(0x1f1, (byte) setupSects);
        b.putInt(0x1f4, (payload.length + 15) / 16); // syssize
        b.putShort(0x1fa, (short) 0xffff); // vid_mode
        b.putShort(0x1fe, (short) 0xaa55);
        b.put(0x200, (byte) 0xeb).put(0x201, (byte) (0x26c - 0x202)); // jmp over the header: header ends at 0x26c
        b.putInt(0x202, 0x53726448);
        b.putShort(0x206, (short) version);
        b.put(0x211, (byte) 0x01); // LOADED_HIGH
        b.putInt(0x214, 0x100000); // code32_start
        b.putInt(0x22c, 0x7fffffff); // initrd_addr_max
        b.putInt(0x230, 0x200000); // kernel_alignment
        b.put(0x234, (byte) 1); // relocatable
        b.put(0x235, (byte) 21); // min_alignment
        b.putShort(0x236, (short) 0x3); // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
        b.putInt(0x238, 2047); // cmdline_size
        b.putLong(0x258, BZ_PREF_ADDRESS);
        b.putInt(0x260, BZ_INIT_SIZE);
        b.put(setupSize, payload);
        tweak.accept(b);
        return b.array();
    }

    static byte[] bzImage(byte[] payload) {
        return bzImage(0x020f, 27, payload, b -> { });
    }

    // gcc-built fixtures

    static final String PVH_SOURCE = """
                .text
                .globl _start
                .code32
            _start:
                hlt
                jmp _start
            pvh_entry:
                movl $0x1234, %eax
                hlt
                .data
                .long 0xfeedf00d
                .bss
                .skip 0x3000
                .pushsection .note.Xen, "a", @note
                .long 4
                .long DESCSZ
                .long 18
                .asciz "Xen"
                .balign 4
            #if DESCSZ == 8
                .quad pvh_entry
            #elif DESCSZ == 4
                .long pvh_entry
            #else
                .short 0x1234
                .balign 4
            #endif
                .balign 4
                .popsection
            """;

    static final String LINKER_SCRIPT = """
            ENTRY(_start)
            PHDRS { text PT_LOAD FLAGS(5); note PT_NOTE FLAGS(4); data PT_LOAD FLAGS(6); }
            SECTIONS {
              . = BASE;
              .text : { *(.text*) } :text
              .note.Xen : { *(.note.Xen) } :text :note
              . = ALIGN(0x1000);
              .data : { *(.data*) } :data
              .bss : { *(.bss*) *(COMMON) } :data
              /DISCARD/ : { *(.note.gnu*) *(.comment) *(.eh_frame*) }
            }
            """;

    /** Offsets in the gcc fixture: pvh_entry is 3 bytes after _start (hlt; jmp rel8). */
    static final int GCC_PVH_ENTRY_OFFSET = 3;

    /** Far more than gcc takes here; only a hang reaches it. */
    private static final Duration GCC_LIMIT = Duration.ofSeconds(300);

    private static Boolean gcc;

    static synchronized boolean gccAvailable() throws InterruptedException {
        if (gcc == null) {
            gcc = BoundedProcess.works(GCC_LIMIT, "gcc", "--version");
        }
        return gcc;
    }

    /** Builds the PVH fixture with gcc: {@code -m64} or {@code -m32}, note descriptor of {@code descsz} bytes, code at {@code base}. */
    static byte[] gccPvhElf(Path dir, boolean is64, int descsz, long base) throws IOException, InterruptedException {
        Path src = dir.resolve("pvh.S");
        Path lds = dir.resolve("link.ld");
        Path out = dir.resolve("pvh-" + (is64 ? 64 : 32) + "-" + descsz + "-" + Long.toHexString(base) + ".elf");
        Files.writeString(src, PVH_SOURCE);
        Files.writeString(lds, LINKER_SCRIPT);
        BoundedProcess.Result gcc = BoundedProcess.run(GCC_LIMIT, "gcc", is64 ? "-m64" : "-m32", "-DDESCSZ=" + descsz,
                "-nostdlib", "-static", "-no-pie", "-Wl,--build-id=none", "-Wl,--defsym=BASE=0x" + Long.toHexString(base),
                "-Wl,-T," + lds, "-o", out.toString(), src.toString());
        if (!gcc.succeeded()) {
            throw new IOException(gcc.describe() + ":\n" + gcc.output());
        }
        return Files.readAllBytes(out);
    }
}
