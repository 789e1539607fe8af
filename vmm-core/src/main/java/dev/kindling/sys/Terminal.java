package dev.kindling.sys;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A terminal's line settings (termios): read them, put the terminal in raw mode, put them back.
 * For a VMM that gives the guest's serial console the user's terminal, as QEMU's {@code -nographic}
 * does: the guest echoes and edits lines itself, so the host terminal must pass every key through
 * untouched.
 */
public final class Terminal {
    /** {@code NCCS} in glibc: the size of {@code c_cc}. */
    public static final int NCCS = 32;
    /** glibc's {@code struct termios} on Linux. */
    public static final StructLayout TERMIOS = MemoryLayout.structLayout(
            JAVA_INT.withName("c_iflag"),
            JAVA_INT.withName("c_oflag"),
            JAVA_INT.withName("c_cflag"),
            JAVA_INT.withName("c_lflag"),
            JAVA_BYTE.withName("c_line"),
            MemoryLayout.sequenceLayout(NCCS, JAVA_BYTE).withName("c_cc"),
            MemoryLayout.paddingLayout(3),
            JAVA_INT.withName("c_ispeed"),
            JAVA_INT.withName("c_ospeed"));

    // c_iflag
    public static final int IGNBRK = 0x1, BRKINT = 0x2, PARMRK = 0x8, ISTRIP = 0x20, INLCR = 0x40, IGNCR = 0x80,
            ICRNL = 0x100, IXON = 0x400;
    // c_oflag
    public static final int OPOST = 0x1;
    // c_cflag
    public static final int CSIZE = 0x30, CS8 = 0x30, PARENB = 0x100;
    // c_lflag
    public static final int ISIG = 0x1, ICANON = 0x2, ECHO = 0x8, ECHONL = 0x40, IEXTEN = 0x8000;
    // c_cc indices
    public static final int VTIME = 5, VMIN = 6;
    /** tcsetattr: change now. */
    public static final int TCSANOW = 0;

    private static final long IFLAG = TERMIOS.byteOffset(MemoryLayout.PathElement.groupElement("c_iflag"));
    private static final long OFLAG = TERMIOS.byteOffset(MemoryLayout.PathElement.groupElement("c_oflag"));
    private static final long CFLAG = TERMIOS.byteOffset(MemoryLayout.PathElement.groupElement("c_cflag"));
    private static final long LFLAG = TERMIOS.byteOffset(MemoryLayout.PathElement.groupElement("c_lflag"));
    private static final long CC = TERMIOS.byteOffset(MemoryLayout.PathElement.groupElement("c_cc"));

    private Terminal() {}

    /** A copy of a terminal's settings; {@link #raw()} derives raw mode from them. */
    public static final class Settings {
        /** The copy lives in a byte array, which has no int alignment. */
        private static final ValueLayout.OfInt FLAGS = JAVA_INT_UNALIGNED;

        private final byte[] bytes;

        private Settings(byte[] bytes) {
            this.bytes = bytes;
        }

        private MemorySegment view() {
            return MemorySegment.ofArray(bytes);
        }

        public int inputFlags() {
            return view().get(FLAGS, IFLAG);
        }

        public int outputFlags() {
            return view().get(FLAGS, OFLAG);
        }

        public int controlFlags() {
            return view().get(FLAGS, CFLAG);
        }

        public int localFlags() {
            return view().get(FLAGS, LFLAG);
        }

        /** {@code c_cc[index]}, e.g. {@link #VMIN}. */
        public int controlChar(int index) {
            return view().get(JAVA_BYTE, CC + index) & 0xff;
        }

        /**
         * Raw mode as QEMU sets it for a stdio console: no echo, no line editing, no signals from keys
         * (Ctrl-C goes to the guest), no CR/LF translation or flow control on input, 8-bit characters,
         * reads return each byte as it comes. Output processing stays on, so the host's own messages
         * still start at the left margin.
         */
        public Settings raw() {
            byte[] copy = bytes.clone();
            MemorySegment s = MemorySegment.ofArray(copy);
            s.set(FLAGS, IFLAG, inputFlags() & ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON));
            s.set(FLAGS, OFLAG, outputFlags() | OPOST);
            s.set(FLAGS, CFLAG, (controlFlags() & ~(CSIZE | PARENB)) | CS8);
            s.set(FLAGS, LFLAG, localFlags() & ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN));
            s.set(JAVA_BYTE, CC + VMIN, (byte) 1);
            s.set(JAVA_BYTE, CC + VTIME, (byte) 0);
            return new Settings(copy);
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Settings other && Arrays.equals(bytes, other.bytes);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(bytes);
        }
    }

    /** Whether {@code fd} is a terminal. */
    public static boolean isTerminal(Fd fd) {
        return Libc.isatty(fd);
    }

    /** tcgetattr. */
    public static Settings get(Fd fd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment t = arena.allocate(TERMIOS);
            Libc.tcgetattr(fd, t);
            return new Settings(t.toArray(JAVA_BYTE));
        }
    }

    /** tcsetattr(TCSANOW): takes effect at once, without waiting for pending output. */
    public static void set(Fd fd, Settings settings) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment t = arena.allocate(TERMIOS);
            t.copyFrom(MemorySegment.ofArray(settings.bytes));
            Libc.tcsetattr(fd, TCSANOW, t);
        }
    }
}
