package dev.kindling.devices.virtio.net;

/**
 * An in-process Ethernet switch: the VMs of one JVM whose interfaces are ports of it reach each other
 * with no host set-up. It learns which port each source MAC is behind and floods broadcast,
 * multicast and unknown destinations; each port queues a bounded number of frames and drops beyond
 * that, as a switch does.
 */
public final class NetSwitch implements AutoCloseable {
    private final String name;

    public NetSwitch(String name) {
        this.name = name;
        throw new UnsupportedOperationException("not yet");
    }

    public String name() {
        return name;
    }

    /** A new port: the backend of one interface. Closing it leaves the switch. */
    public NetBackend connect() {
        throw new UnsupportedOperationException("not yet");
    }

    /** Disconnects every port (their guests see no more frames). */
    @Override
    public void close() {
        throw new UnsupportedOperationException("not yet");
    }
}
