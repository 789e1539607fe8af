package dev.kindling.devices.virtio.vsock;

import dev.kindling.devices.virtio.VirtioContext;
import dev.kindling.devices.virtio.VirtioDevice;
import dev.kindling.devices.virtio.VirtioIds;
import dev.kindling.sys.Fd;
import java.util.Objects;

/**
 * virtio-vsock (virtio 1.2 section 5.10, device ID 19): the rx, tx and event queues, the guest's
 * CID in configuration space, and the table of stream connections between guest ports and host
 * stream sockets, which the device thread relays both ways within the peers' credit.
 */
public final class VirtioVsock implements VirtioDevice {
    /** The host's CID, as the guest addresses it. */
    public static final long HOST_CID = 2;
    /** Connections at once, as Firecracker allows. */
    public static final int MAX_CONNECTIONS = 1023;
    /** Where the ports of host-initiated connections start (and wrap back to), as in Firecracker. */
    public static final int FIRST_HOST_PORT = 1 << 30;

    /** How a host-initiated connection ended up; called on the device thread, once. */
    public interface ConnectCallback {
        /** The guest accepted: relaying starts once this returns. {@code hostPort} is the connection's local port. */
        void connected(int hostPort);

        /** The guest refused (RST), did not answer in time, or the device is not in use or full. */
        void refused(String why);
    }

    private final String name;
    private final long guestCid;
    private final VsockHost host;

    /**
     * A device for a guest with CID {@code guestCid} (3 and up, below 2^32 - 1), whose guest-initiated
     * connections {@code host} answers.
     */
    public VirtioVsock(String name, long guestCid, VsockHost host) {
        this.name = Objects.requireNonNull(name, "name");
        if (guestCid < 3 || guestCid >= 0xFFFF_FFFFL) {
            throw new IllegalArgumentException("guest CID " + guestCid + " is reserved or too large: use 3 to 4294967294");
        }
        this.guestCid = guestCid;
        this.host = Objects.requireNonNull(host, "host");
    }

    public long guestCid() {
        return guestCid;
    }

    /**
     * Asks the guest for a connection to its port {@code guestPort}, relayed to {@code stream} (a
     * connected stream socket, which the device owns from now on and closes when the connection ends
     * or is refused). Returns at once; {@code callback} tells the outcome on the device thread.
     */
    public void connect(int guestPort, Fd stream, ConnectCallback callback) {
        throw new UnsupportedOperationException("not yet");
    }

    /**
     * Drops every connection (the host ends see end of stream) and sends the driver
     * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, after which it re-reads the guest CID, as after a snapshot
     * restore.
     */
    public void resetTransport() {
        throw new UnsupportedOperationException("not yet");
    }

    /** Connections open or being opened now. */
    public int connections() {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public int deviceType() {
        return VirtioIds.VSOCK;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long features() {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public int queueCount() {
        return 3;
    }

    @Override
    public int queueMaxSize(int index) {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public int configSize() {
        return 8;
    }

    @Override
    public long readConfig(int offset, int size) {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public void writeConfig(int offset, int size, long value) {}

    @Override
    public void activate(VirtioContext context) {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public void reset() {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public void close() {
        throw new UnsupportedOperationException("not yet");
    }
}
