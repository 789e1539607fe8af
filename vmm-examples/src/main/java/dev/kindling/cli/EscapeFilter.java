package dev.kindling.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.util.Objects;

/**
 * QEMU's console escapes on the way from the user's terminal to the guest: Ctrl-A x ends the VM
 * (the stream ends there), Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A h prints this list; any other
 * key after Ctrl-A is dropped, as QEMU drops it.
 */
final class EscapeFilter extends InputStream {
    static final int CTRL_A = 0x01;
    static final String HELP = "kindling: Ctrl-A x  end the VM;  Ctrl-A Ctrl-A  send Ctrl-A;  Ctrl-A h  this help";

    private final InputStream in;
    private final Runnable quit;
    private final PrintStream help;
    private boolean escape;
    private boolean ended;

    /** @param quit run (on the reading thread) when the user types Ctrl-A x */
    EscapeFilter(InputStream in, Runnable quit, PrintStream help) {
        this.in = Objects.requireNonNull(in, "in");
        this.quit = Objects.requireNonNull(quit, "quit");
        this.help = Objects.requireNonNull(help, "help");
    }

    @Override
    public int read() throws IOException {
        byte[] one = new byte[1];
        return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        Objects.checkFromIndexSize(off, len, b.length);
        if (len == 0) {
            return 0;
        }
        while (!ended) {
            int n = in.read(b, off, len);
            if (n < 0) {
                return -1;
            }
            int out = off;
            for (int i = off; i < off + n; i++) {
                int c = b[i] & 0xff;
                if (escape) {
                    escape = false;
                    if (c == CTRL_A) {
                        b[out++] = (byte) c;
                    } else if (c == 'x') {
                        ended = true;
                        quit.run();
                        break; // what came before still goes to the guest
                    } else if (c == 'h' || c == '?') {
                        help.println(HELP);
                    }
                } else if (c == CTRL_A) {
                    escape = true;
                } else {
                    b[out++] = (byte) c;
                }
            }
            if (out > off) {
                return out - off;
            }
        }
        return -1;
    }

    @Override
    public void close() throws IOException {
        in.close();
    }
}
