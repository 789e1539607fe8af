package dev.kindling.devices.virtio.vsock;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;

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
    private Vsock() {}

    /**
     * Makes the device for guest CID {@code guestCid} and its host side; listens on {@code udsPath}
     * (null: no Unix-socket protocol), which must not exist yet.
     */
    public static Vsock create(String name, long guestCid, Path udsPath) throws IOException {
        throw new UnsupportedOperationException("not yet");
    }

    /** The device to put on a transport; {@link #close()} does not close it (its transport does). */
    public VirtioVsock device() {
        throw new UnsupportedOperationException("not yet");
    }

    public long guestCid() {
        throw new UnsupportedOperationException("not yet");
    }

    public Optional<Path> udsPath() {
        throw new UnsupportedOperationException("not yet");
    }

    /**
     * Opens a stream connection to guest port {@code port}.
     *
     * @throws java.net.ConnectException if the guest refuses (nobody listens there) or its driver is
     *     not running yet
     */
    public VsockConnection connect(int port) throws IOException {
        throw new UnsupportedOperationException("not yet");
    }

    /**
     * As {@link #connect(int)}, but while the guest refuses (it has not booted far enough, or its
     * server is not listening yet) tries again until {@code timeout} has passed.
     *
     * @throws java.net.SocketTimeoutException if the guest still refuses after {@code timeout}
     */
    public VsockConnection connect(int port, Duration timeout) throws IOException {
        throw new UnsupportedOperationException("not yet");
    }

    /**
     * Accepts the connections the guest opens to host port {@code port}, ahead of the Unix-socket
     * protocol's {@code <udsPath>_<port>}.
     *
     * @throws java.net.BindException if another listener has the port
     */
    public VsockListener listen(int port) throws IOException {
        throw new UnsupportedOperationException("not yet");
    }

    /** Stops listening on {@code udsPath} (and removes it) and closes the listeners; the device's connections end with the device. */
    @Override
    public void close() {
        throw new UnsupportedOperationException("not yet");
    }
}
