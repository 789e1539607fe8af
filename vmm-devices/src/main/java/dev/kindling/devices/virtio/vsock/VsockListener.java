package dev.kindling.devices.virtio.vsock;

import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import java.io.IOException;
import java.nio.channels.AsynchronousCloseException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * Accepts the connections the guest opens to one host port (see {@link Vsock#listen(int)}). Up to
 * {@link #BACKLOG} connections wait to be accepted; the guest's connections beyond that get a RST.
 */
public final class VsockListener implements AutoCloseable {
    /** Connections the guest has opened that wait for {@link #accept()}. */
    public static final int BACKLOG = 64;

    private final int port;
    private final Consumer<VsockListener> onClose;
    private final ArrayDeque<VsockConnection> pending = new ArrayDeque<>();
    private final Object lock = new Object();
    private boolean closed;

    VsockListener(int port, Consumer<VsockListener> onClose) {
        this.port = port;
        this.onClose = onClose;
    }

    public int port() {
        return port;
    }

    /**
     * The guest connects from {@code guestPort}: the device's end of a new socket pair, the other
     * end queued for {@link #accept()}; null (the guest gets a RST) if closed or the backlog is full.
     */
    Fd guestConnects(int guestPort) {
        synchronized (lock) {
            if (closed || pending.size() >= BACKLOG) {
                return null;
            }
            Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
            pending.add(new VsockConnection(pair[0], port, guestPort));
            lock.notifyAll();
            return pair[1];
        }
    }

    /**
     * Waits for the guest's next connection.
     *
     * @throws java.nio.channels.AsynchronousCloseException if the listener is or becomes closed
     */
    public VsockConnection accept() throws IOException, InterruptedException {
        synchronized (lock) {
            while (pending.isEmpty()) {
                checkOpen();
                lock.wait();
            }
            return pending.remove();
        }
    }

    /** As {@link #accept()}, waiting at most {@code timeout}: empty if none came. */
    public Optional<VsockConnection> accept(Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (lock) {
            while (pending.isEmpty()) {
                checkOpen();
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return Optional.empty();
                }
                lock.wait(Math.max(1, left / 1_000_000));
            }
            return Optional.of(pending.remove());
        }
    }

    private void checkOpen() throws IOException {
        if (closed) {
            throw new AsynchronousCloseException();
        }
    }

    /** Stops listening: later guest connections to the port get a RST; connections not yet accepted are closed. */
    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            pending.forEach(VsockConnection::close);
            pending.clear();
            lock.notifyAll();
        }
        onClose.accept(this);
    }

    @Override
    public String toString() {
        return "VsockListener[port " + Integer.toUnsignedString(port) + (closed ? ", closed]" : "]");
    }
}
