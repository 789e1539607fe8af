package dev.kindling.devices.virtio.vsock;

import java.io.IOException;
import java.time.Duration;
import java.util.Optional;

/** Accepts the connections the guest opens to one host port (see {@link Vsock#listen(int)}). */
public final class VsockListener implements AutoCloseable {
    private VsockListener() {}

    public int port() {
        throw new UnsupportedOperationException("not yet");
    }

    /**
     * Waits for the guest's next connection.
     *
     * @throws java.nio.channels.AsynchronousCloseException if the listener is closed meanwhile
     */
    public VsockConnection accept() throws IOException, InterruptedException {
        throw new UnsupportedOperationException("not yet");
    }

    /** As {@link #accept()}, waiting at most {@code timeout}: empty if none came. */
    public Optional<VsockConnection> accept(Duration timeout) throws IOException, InterruptedException {
        throw new UnsupportedOperationException("not yet");
    }

    /** Stops listening: later guest connections to the port get a RST; connections not yet accepted are closed. */
    @Override
    public void close() {
        throw new UnsupportedOperationException("not yet");
    }
}
