package dev.kindling.sys;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.testing.CProbe;
import dev.kindling.testing.Require;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.PaddingLayout;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@link Terminal}'s termios layout and constants against {@code <termios.h>}, and raw mode on a real pty. */
@Timeout(60)
class TerminalTest {
    private static final int O_NOCTTY = 0x100;
    private static final Map<String, Integer> CONSTANTS = new LinkedHashMap<>();

    static {
        CONSTANTS.put("NCCS", Terminal.NCCS);
        CONSTANTS.put("IGNBRK", Terminal.IGNBRK);
        CONSTANTS.put("BRKINT", Terminal.BRKINT);
        CONSTANTS.put("PARMRK", Terminal.PARMRK);
        CONSTANTS.put("ISTRIP", Terminal.ISTRIP);
        CONSTANTS.put("INLCR", Terminal.INLCR);
        CONSTANTS.put("IGNCR", Terminal.IGNCR);
        CONSTANTS.put("ICRNL", Terminal.ICRNL);
        CONSTANTS.put("IXON", Terminal.IXON);
        CONSTANTS.put("OPOST", Terminal.OPOST);
        CONSTANTS.put("CSIZE", Terminal.CSIZE);
        CONSTANTS.put("CS8", Terminal.CS8);
        CONSTANTS.put("PARENB", Terminal.PARENB);
        CONSTANTS.put("ISIG", Terminal.ISIG);
        CONSTANTS.put("ICANON", Terminal.ICANON);
        CONSTANTS.put("ECHO", Terminal.ECHO);
        CONSTANTS.put("ECHONL", Terminal.ECHONL);
        CONSTANTS.put("IEXTEN", Terminal.IEXTEN);
        CONSTANTS.put("VTIME", Terminal.VTIME);
        CONSTANTS.put("VMIN", Terminal.VMIN);
        CONSTANTS.put("TCSANOW", Terminal.TCSANOW);
        CONSTANTS.put("O_NOCTTY", O_NOCTTY); // the test's own, for opening the pty
    }

    @Test
    void layoutAndConstantsMatchTheCHeader() throws Exception {
        Require.that(Require.onPath("gcc"), "gcc is not installed: needed for the termios header check");
        StringBuilder c = new StringBuilder("""
                #include <fcntl.h>
                #include <stddef.h>
                #include <stdio.h>
                #include <termios.h>
                int main(void) {
                    printf("termios %zu\\n", sizeof(struct termios));
                """);
        Map<String, Long> expected = new TreeMap<>();
        expected.put("termios", Terminal.TERMIOS.byteSize());
        for (MemoryLayout m : Terminal.TERMIOS.memberLayouts()) {
            if (m instanceof PaddingLayout) {
                continue;
            }
            String field = m.name().orElseThrow();
            c.append("    printf(\"termios.%s %zu\\n\", \"").append(field).append("\", offsetof(struct termios, ")
                    .append(field).append("));\n");
            expected.put("termios." + field, Terminal.TERMIOS.byteOffset(MemoryLayout.PathElement.groupElement(field)));
        }
        CONSTANTS.forEach((name, value) -> {
            c.append("    printf(\"%s %ld\\n\", \"").append(name).append("\", (long) ").append(name).append(");\n");
            expected.put(name, (long) value);
        });
        c.append("    return 0;\n}\n");
        Map<String, Long> actual = new TreeMap<>();
        CProbe.printed(Path.of("target", "terminal-header-check"), "termios_layout", c)
                .forEach((name, value) -> actual.put(name, Long.parseLong(value)));
        assertThat(actual).isEqualTo(expected);
    }

    /** A new pseudo-terminal: [0] the master (the "user"), [1] the slave (what a program sees as its terminal). */
    private static Fd[] pty(Arena arena) {
        Fd master = Fd.adopt(Libc.open("/dev/ptmx", Libc.O_RDWR | O_NOCTTY), "/dev/ptmx");
        try {
            Libc.ioctl(master, Ioctl.iow("TIOCSPTLCK", 'T', 0x31, 4), arena.allocateFrom(ValueLayout.JAVA_INT, 0));
            int slave = Libc.ioctl(master, Ioctl.io("TIOCGPTPEER", 'T', 0x41), Libc.O_RDWR | O_NOCTTY);
            return new Fd[] {master, Fd.adopt(slave, "pty slave")};
        } catch (RuntimeException e) {
            master.close();
            throw e;
        }
    }

    private static void write(Fd fd, Arena arena, String s) {
        Libc.write(fd, arena.allocateFrom(s, US_ASCII), s.length());
    }

    private static String read(Fd fd, Arena arena) {
        assertThat(Poller.waitReadable(fd, 10_000)).as(fd.what() + " readable").isTrue();
        MemorySegment buf = arena.allocate(64);
        long n = Libc.read(fd, buf, 64);
        return new String(buf.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE), US_ASCII);
    }

    @Test
    void rawModePassesKeysThroughAndTheSettingsComeBack() {
        Require.that(Files.exists(Path.of("/dev/ptmx")), "no /dev/ptmx: needed for the raw-mode check");
        try (Arena arena = Arena.ofConfined()) {
            Fd[] pty = pty(arena);
            try {
                Fd master = pty[0], slave = pty[1];
                assertThat(Terminal.isTerminal(slave)).isTrue();
                Terminal.Settings cooked = Terminal.get(slave);
                assertThat(cooked.localFlags() & (Terminal.ICANON | Terminal.ECHO)).isEqualTo(Terminal.ICANON | Terminal.ECHO);

                Terminal.set(slave, cooked.raw());
                Terminal.Settings raw = Terminal.get(slave);
                assertThat(raw.localFlags() & (Terminal.ICANON | Terminal.ECHO | Terminal.ISIG | Terminal.IEXTEN)).isZero();
                assertThat(raw.inputFlags() & (Terminal.ICRNL | Terminal.IXON)).isZero();
                assertThat(raw.outputFlags() & Terminal.OPOST).isEqualTo(Terminal.OPOST);
                assertThat(raw.controlFlags() & Terminal.CSIZE).isEqualTo(Terminal.CS8);
                assertThat(raw.controlChar(Terminal.VMIN)).isEqualTo(1);
                // a key arrives as typed, at once (no line to finish), with no echo and CR left alone
                write(master, arena, "x\r\u0003");
                assertThat(read(slave, arena)).isEqualTo("x\r\u0003");
                write(slave, arena, "y");
                assertThat(read(master, arena)).as("nothing echoed before the program's own output").isEqualTo("y");

                Terminal.set(slave, cooked);
                assertThat(Terminal.get(slave)).isEqualTo(cooked);
                write(master, arena, "z\r");
                assertThat(read(slave, arena)).as("cooked again: CR becomes LF").isEqualTo("z\n");
            } finally {
                pty[0].close();
                pty[1].close();
            }
        }
    }

    @Test
    void aSocketIsNotATerminal() {
        Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
        try {
            assertThat(Terminal.isTerminal(pair[0])).isFalse();
        } finally {
            pair[0].close();
            pair[1].close();
        }
    }
}
