package dev.kindling.boot;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * An initramfs image: a newc ("070701") cpio archive, as the kernel's {@code init/initramfs.c}
 * unpacks it, made from files given in memory. Linux unpacks concatenated archives in order, a later
 * entry replacing an earlier one of the same name, so {@link #appendTo} puts a few files over a base
 * initramfs (a test's own {@code /init}, a program) without rebuilding it.
 *
 * <pre>{@code
 * byte[] cpio = Initramfs.builder().directory("dev").charDevice("dev/console", 5, 1)
 *         .file("init", program, 0755).build();
 * }</pre>
 */
public final class Initramfs {
    private static final int S_IFDIR = 0040000, S_IFREG = 0100000, S_IFCHR = 0020000, S_IFLNK = 0120000;

    private record Entry(String name, int mode, int rdevMajor, int rdevMinor, byte[] data) {}

    private final List<Entry> entries = new ArrayList<>();
    private final Set<String> names = new HashSet<>();

    private Initramfs() {}

    public static Initramfs builder() {
        return new Initramfs();
    }

    /** A directory, mode 0755. Parents must be added first, as cpio lists them. */
    public Initramfs directory(String name) {
        return add(name, S_IFDIR | 0755, 0, 0, new byte[0]);
    }

    /** A regular file with permission bits {@code permissions} (such as {@code 0755}). */
    public Initramfs file(String name, byte[] data, int permissions) {
        return add(name, S_IFREG | checkPermissions(permissions), 0, 0, data.clone());
    }

    /** A character device node, mode 0600 ({@code dev/console} is 5:1). */
    public Initramfs charDevice(String name, int major, int minor) {
        if (major < 0 || minor < 0 || major > 0xfff || minor > 0xfffff) {
            throw new IllegalArgumentException("device number " + major + ":" + minor + " is out of range");
        }
        return add(name, S_IFCHR | 0600, major, minor, new byte[0]);
    }

    /** A symbolic link {@code name} pointing at {@code target}. */
    public Initramfs symlink(String name, String target) {
        return add(name, S_IFLNK | 0777, 0, 0, target.getBytes(StandardCharsets.UTF_8));
    }

    private static int checkPermissions(int permissions) {
        if ((permissions & ~07777) != 0) {
            throw new IllegalArgumentException("permissions 0" + Integer.toOctalString(permissions) + " are not in 0..07777");
        }
        return permissions;
    }

    private Initramfs add(String name, int mode, int major, int minor, byte[] data) {
        Objects.requireNonNull(name, "name");
        if (name.isEmpty() || name.startsWith("/") || name.endsWith("/") || name.contains("//") || name.contains("\0")
                || List.of(name.split("/")).contains("..") || name.equals("TRAILER!!!")) {
            throw new IllegalArgumentException("initramfs entry name '" + name + "' is not a relative path");
        }
        if (!names.add(name)) {
            throw new IllegalArgumentException("initramfs entry '" + name + "' is given twice");
        }
        entries.add(new Entry(name, mode, major, minor, data));
        return this;
    }

    /** The archive, with its trailer. */
    public byte[] build() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            writeTo(out);
        } catch (IOException e) {
            throw new IllegalStateException(e); // a ByteArrayOutputStream does not fail
        }
        return out.toByteArray();
    }

    /** Writes the archive to {@code out}. */
    public void writeTo(OutputStream out) throws IOException {
        int ino = 1;
        for (Entry e : entries) {
            entry(out, ino++, e);
        }
        entry(out, 0, new Entry("TRAILER!!!", 0, 0, 0, new byte[0]));
    }

    /** Writes {@code base} followed by this archive to {@code target}: this archive's entries win. */
    public void appendTo(Path base, Path target) throws IOException {
        byte[] first = Files.readAllBytes(base);
        try (OutputStream out = Files.newOutputStream(target)) {
            out.write(first);
            // each archive starts 4-byte aligned; the kernel skips zero padding between archives
            out.write(new byte[pad(first.length)]);
            writeTo(out);
        }
    }

    /** One newc entry: the 110-byte ASCII header, the name with its NUL, the data, each padded to 4 bytes. */
    private static void entry(OutputStream out, int ino, Entry e) throws IOException {
        byte[] n = (e.name() + "\0").getBytes(StandardCharsets.UTF_8);
        int nlink = (e.mode() & 0170000) == S_IFDIR ? 2 : 1;
        String header = String.format("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
                ino, e.mode(), 0, 0, e.mode() == 0 ? 1 : nlink, 0, e.data().length, 0, 0,
                e.rdevMajor(), e.rdevMinor(), n.length, 0);
        out.write(header.getBytes(StandardCharsets.US_ASCII));
        out.write(n);
        out.write(new byte[pad(header.length() + n.length)]);
        out.write(e.data());
        out.write(new byte[pad(e.data().length)]);
    }

    private static int pad(int length) {
        return (4 - length % 4) % 4;
    }
}
