package dev.kindling.cli;

import dev.kindling.sys.Fd;
import dev.kindling.sys.PollingInputStream;
import dev.kindling.sys.Terminal;
import java.io.InputStream;
import java.io.PrintStream;
import java.util.concurrent.CompletableFuture;

/**
 * The user's side of the guest's serial console for {@code kindling run}. This process's standard
 * input is read through poll, so the read ends with the VM and typed input that follows is left to
 * the shell. On a terminal it works like QEMU's {@code -nographic}: raw mode while the guest runs (the
 * guest echoes and edits lines itself, and answers the terminal's queries), Ctrl-A escapes
 * ({@link EscapeFilter}), and the terminal's settings put back on every way out, a SIGTERM or SIGINT
 * included (through a shutdown hook). Any other stream is passed on as it is.
 */
final class HostConsole implements AutoCloseable {
    private static final Fd STDIN = Fd.borrow(0, "standard input");

    private final InputStream stream;
    private final PollingInputStream polled;
    private final boolean terminal;
    private final CompletableFuture<Void> quit = new CompletableFuture<>();
    private final PrintStream err;
    private Terminal.Settings saved;
    private Thread restoreOnExit;

    private HostConsole(InputStream in, PrintStream err) {
        this.err = err;
        if (in == System.in) {
            polled = PollingInputStream.stdin();
            terminal = Terminal.isTerminal(STDIN);
            stream = terminal ? new EscapeFilter(polled, () -> quit.complete(null), err) : polled;
        } else {
            polled = null;
            terminal = false;
            stream = in;
        }
    }

    /** For {@code in}: the process's {@code System.in}, or any stream (tests). */
    static HostConsole open(InputStream in, PrintStream err) {
        return new HostConsole(in, err);
    }

    /** What the guest's serial port reads. */
    InputStream stream() {
        return stream;
    }

    /** Completes when the user typed Ctrl-A x. */
    CompletableFuture<Void> quitRequested() {
        return quit;
    }

    /** On a terminal: prints how to leave, then puts it in raw mode until {@link #close()}. */
    void enterRawMode() {
        if (!terminal || saved != null) {
            return;
        }
        err.println("kindling: the guest's console is on this terminal; Ctrl-A x ends the VM (Ctrl-A h: help)");
        saved = Terminal.get(STDIN);
        Terminal.Settings original = saved;
        restoreOnExit = new Thread(() -> Terminal.set(STDIN, original), "kindling-restore-terminal");
        Runtime.getRuntime().addShutdownHook(restoreOnExit);
        Terminal.set(STDIN, saved.raw());
    }

    /** Ends the read of standard input (the guest gets no more); call before the VM is closed. */
    void endInput() {
        if (polled != null) {
            polled.close();
        }
    }

    /** Ends the input and puts the terminal's settings back. */
    @Override
    public void close() {
        endInput();
        if (saved != null) {
            Terminal.set(STDIN, saved);
            saved = null;
            try {
                Runtime.getRuntime().removeShutdownHook(restoreOnExit);
            } catch (IllegalStateException e) {
                // the JVM is shutting down: the hook restores the settings again, harmlessly
            }
        }
    }
}
