package dev.kindling.sandbox;

import java.io.InputStream;
import java.io.OutputStream;
import java.time.Duration;
import java.util.OptionalInt;

/**
 * A command running in a sandbox ({@link Sandbox#start}), with its standard streams. Closing it
 * kills the command if it still runs.
 */
public interface ExecHandle extends AutoCloseable {
    /** The guest process id. */
    int pid();

    /** The command's stdin (only when the {@link Exec} asked for streamed stdin); closing it sends end of file. */
    OutputStream stdin();

    InputStream stdout();

    InputStream stderr();

    /** The exit code (128 + signal for a signal), or empty when it still runs after {@code timeout}. */
    OptionalInt waitFor(Duration timeout) throws InterruptedException;

    /** Sends the command's process group SIGKILL. */
    void kill();

    /** Sends the command's process group {@code signo}. */
    void signal(int signo);

    @Override
    void close();
}
