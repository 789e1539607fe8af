package dev.kindling.devices.virtio.vsock;

import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.System.Logger;
import java.lang.System.Logger.Level;
import java.net.BindException;
import java.net.ConnectException;
import java.net.SocketTimeoutException;
import java.nio.channels.ClosedChannelException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The host side of a microVM's vsock device: the Java API and, with a {@code udsPath}, Firecracker's
 * host Unix-socket protocol. Host-initiated connections: {@link #connect(int)}; guest-initiated ones
 * go to a {@link #listen(int) listener} on their port, else (with a {@code udsPath}) to the Unix
 * socket {@code <udsPath>_<port>}, else the guest gets a RST.
 *
 * <p><b>The Unix-socket protocol</b> (Firecracker's {@code docs/vsock.md}): the VM listens on
 * {@code udsPath}; a client connects and sends {@code CONNECT <port>\n} (the keyword in any case, at
 * most 32 bytes before the newline) and gets {@code OK <host_port>\n}, then the bytes of a stream
 * connection to guest port {@code port}; a malformed line or a refusal closes the socket.
 */
public final class Vsock implements AutoCloseable {
    private static final Logger LOG = System.getLogger(Vsock.class.getName());
    /** The longest wait for the device's answer to one connection request. */
    static final Duration ANSWER_TIMEOUT = Duration.ofSeconds(30);
    private static final long FIRST_RETRY_NANOS = TimeUnit.MILLISECONDS.toNanos(20);
    private static final long MAX_RETRY_NANOS = TimeUnit.MILLISECONDS.toNanos(200);

    private final String name;
    private final VirtioVsock device;
    private final UnixSocketServer server;
    private final ConcurrentHashMap<Integer, VsockListener> listeners = new ConcurrentHashMap<>();
    private volatile boolean closed;

    private Vsock(String name, long guestCid, Path udsPath, Duration handshakeTimeout) throws IOException {
        this.name = name;
        this.device = new VirtioVsock(name, guestCid, this::guestConnects);
        this.server = udsPath == null ? null : new UnixSocketServer(name, udsPath, device, handshakeTimeout);
    }

    /**
     * Makes the device for guest CID {@code guestCid} and its host side; listens on {@code udsPath}
     * (null: no Unix-socket protocol), which must not exist yet.
     */
    public static Vsock create(String name, long guestCid, Path udsPath) throws IOException {
        return create(name, guestCid, udsPath, UnixSocketServer.HANDSHAKE_TIMEOUT);
    }

    /** As {@link #create(String, long, Path)}, giving Unix-socket clients {@code handshakeTimeout} to send their line. */
    static Vsock create(String name, long guestCid, Path udsPath, Duration handshakeTimeout) throws IOException {
        Objects.requireNonNull(name, "name");
        return new Vsock(name, guestCid, udsPath, handshakeTimeout);
    }

    /** The device to put on a transport; {@link #close()} does not close it (its transport does). */
    public VirtioVsock device() {
        return device;
    }

    public long guestCid() {
        return device.guestCid();
    }

    public Optional<Path> udsPath() {
        return server == null ? Optional.empty() : Optional.of(server.path());
    }

    /**
     * Opens a stream connection to guest port {@code port}.
     *
     * @throws java.net.ConnectException if the guest refuses (nobody listens there) or its driver is
     *     not running yet
     */
    public VsockConnection connect(int port) throws IOException {
        return attempt(port, System.nanoTime() + ANSWER_TIMEOUT.toNanos());
    }

    /**
     * As {@link #connect(int)}, but while the guest refuses (it has not booted far enough, or its
     * server is not listening yet) tries again until {@code timeout} has passed.
     *
     * @throws java.net.SocketTimeoutException if the guest still refuses after {@code timeout}
     */
    public VsockConnection connect(int port, Duration timeout) throws IOException {
        long start = System.nanoTime();
        long deadline = start + timeout.toNanos();
        long backoff = FIRST_RETRY_NANOS;
        int attempts = 0;
        while (true) {
            ConnectException refusal;
            attempts++;
            try {
                return attempt(port, Math.min(deadline, System.nanoTime() + ANSWER_TIMEOUT.toNanos()));
            } catch (ConnectException e) {
                refusal = e;
            } catch (SocketTimeoutException e) {
                throw new SocketTimeoutException("vsock guest port " + Integer.toUnsignedString(port) + " did not answer within "
                        + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start) + " ms (" + attempts + " attempts)");
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                SocketTimeoutException e = new SocketTimeoutException("vsock guest port " + Integer.toUnsignedString(port)
                        + " still refused after " + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start) + " ms ("
                        + attempts + " attempts); last: " + refusal.getMessage());
                e.addSuppressed(refusal);
                throw e;
            }
            try {
                TimeUnit.NANOSECONDS.sleep(Math.min(backoff, left));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while waiting for vsock guest port " + Integer.toUnsignedString(port));
            }
            backoff = Math.min(MAX_RETRY_NANOS, backoff * 2);
        }
    }

    /** One connection request, waiting for the device's answer until {@code deadline}. */
    private VsockConnection attempt(int port, long deadline) throws IOException {
        if (closed) {
            throw new ClosedChannelException();
        }
        Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
        Fd user = pair[0];
        CompletableFuture<Integer> answer = new CompletableFuture<>();
        try {
            device.connect(port, pair[1], new VirtioVsock.ConnectCallback() {
                @Override
                public void connected(int hostPort) {
                    answer.complete(hostPort);
                }

                @Override
                public void refused(String why) {
                    answer.completeExceptionally(new ConnectException(
                            "vsock guest port " + Integer.toUnsignedString(port) + " refused: " + why));
                }
            });
        } catch (RuntimeException e) {
            pair[1].close();
            user.close();
            throw e;
        }
        try {
            int hostPort = answer.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            return new VsockConnection(user, hostPort, port);
        } catch (ExecutionException e) {
            user.close();
            if (e.getCause() instanceof ConnectException c) {
                throw new ConnectException(c.getMessage());
            }
            throw new IOException(e.getCause());
        } catch (TimeoutException e) {
            user.close();
            throw new SocketTimeoutException("vsock guest port " + Integer.toUnsignedString(port) + " did not answer");
        } catch (InterruptedException e) {
            user.close();
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while connecting to vsock guest port " + Integer.toUnsignedString(port));
        }
    }

    /**
     * Accepts the connections the guest opens to host port {@code port}, ahead of the Unix-socket
     * protocol's {@code <udsPath>_<port>}.
     *
     * @throws java.net.BindException if another listener has the port
     */
    public VsockListener listen(int port) throws IOException {
        if (closed) {
            throw new ClosedChannelException();
        }
        VsockListener listener = new VsockListener(port, l -> listeners.remove(l.port(), l));
        if (listeners.putIfAbsent(port, listener) != null) {
            throw new BindException("vsock host port " + Integer.toUnsignedString(port) + " already has a listener");
        }
        if (closed) {
            listener.close();
            throw new ClosedChannelException();
        }
        return listener;
    }

    /** Answers a guest connection on the device thread: a listener, else {@code <udsPath>_<port>}, else RST. */
    private Fd guestConnects(int port, int guestPort) {
        if (closed) {
            return null;
        }
        try {
            VsockListener listener = listeners.get(port);
            if (listener != null) {
                return listener.guestConnects(guestPort);
            }
            return server == null ? null : server.connectToHost(port);
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, name + ": answering the guest's connection to host port " + Integer.toUnsignedString(port), e);
            return null;
        }
    }

    /** Stops listening on {@code udsPath} (and removes it) and closes the listeners; the device's connections end with the device. */
    @Override
    public void close() {
        closed = true;
        if (server != null) {
            server.close();
        }
        for (VsockListener l : List.copyOf(listeners.values())) {
            l.close();
        }
    }
}
