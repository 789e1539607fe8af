package dev.kindling.boot;

import java.nio.charset.StandardCharsets;

/**
 * A kernel command line under construction, like linux-loader's {@code Cmdline}: printable ASCII only
 * (no NUL, no control characters), and never longer than its capacity, which counts the terminating NUL.
 * Arguments are separated by single spaces. A rejected addition leaves the line unchanged.
 */
public final class CmdLine {
    private final int capacity;
    private final StringBuilder line = new StringBuilder();

    /** An empty line of {@link MicrovmLayout#CMDLINE_MAX_SIZE} bytes capacity. */
    public CmdLine() {
        this(MicrovmLayout.CMDLINE_MAX_SIZE);
    }

    /** An empty line holding at most {@code capacity - 1} characters plus the NUL. */
    public CmdLine(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("command line capacity " + capacity);
        }
        this.capacity = capacity;
    }

    /** A line of default capacity holding {@code args}. */
    public static CmdLine of(String args) {
        return new CmdLine().append(args);
    }

    /** Appends {@code args} (one or more space-separated arguments), after a space if the line is not empty. */
    public CmdLine append(String args) {
        check(args);
        String trimmed = args.strip();
        if (trimmed.isEmpty()) {
            return this;
        }
        int extra = trimmed.length() + (line.isEmpty() ? 0 : 1);
        if (line.length() + extra > capacity - 1) {
            throw new BootException("command line would be " + (line.length() + extra) + " characters; at most "
                    + (capacity - 1) + " fit (capacity " + capacity + " with the NUL)");
        }
        if (!line.isEmpty()) {
            line.append(' ');
        }
        line.append(trimmed);
        return this;
    }

    /** Appends {@code key=value}; the key must not be empty or contain spaces or '=', the value no spaces. */
    public CmdLine insert(String key, String value) {
        check(key);
        check(value);
        if (key.isEmpty() || key.indexOf(' ') >= 0 || key.indexOf('=') >= 0) {
            throw new BootException("bad command line key '" + key + "'");
        }
        if (value.indexOf(' ') >= 0) {
            throw new BootException("command line value for " + key + " contains a space: '" + value + "'");
        }
        return append(key + "=" + value);
    }

    /** Appends {@code virtio_mmio.device=512@0x<base>:<irq>} for a transport of the usual 512 bytes. */
    public CmdLine appendVirtioMmioDevice(long base, int irq) {
        return appendVirtioMmioDevice(MicrovmLayout.VIRTIO_MMIO_SIZE, base, irq);
    }

    /** Appends {@code virtio_mmio.device=<size>@0x<base>:<irq>}, Linux's syntax for a transport without ACPI or DT. */
    public CmdLine appendVirtioMmioDevice(long size, long base, int irq) {
        if (size <= 0 || base < 0 || irq < 0) {
            throw new BootException("bad virtio-mmio device " + size + "@" + base + ":" + irq);
        }
        return insert("virtio_mmio.device", size + "@0x" + Long.toHexString(base) + ":" + irq);
    }

    private static void check(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == 0) {
                throw new BootException("command line text contains a NUL byte at index " + i);
            }
            if (c < 0x20 || c > 0x7e) {
                throw new BootException("command line text contains a non-printable or non-ASCII character (U+"
                        + String.format("%04X", (int) c) + ") at index " + i);
            }
        }
    }

    /** Characters, without the NUL. */
    public int length() {
        return line.length();
    }

    /** Bytes available including the NUL. */
    public int capacity() {
        return capacity;
    }

    public boolean isEmpty() {
        return line.isEmpty();
    }

    /** The line followed by its NUL terminator. */
    public byte[] toBytesWithNul() {
        byte[] text = line.toString().getBytes(StandardCharsets.US_ASCII);
        byte[] out = new byte[text.length + 1];
        System.arraycopy(text, 0, out, 0, text.length);
        return out;
    }

    @Override
    public String toString() {
        return line.toString();
    }
}
