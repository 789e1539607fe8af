package dev.kindling.devices.virtio.vsock;

import dev.kindling.sys.Fd;

/** The host side of a {@link VirtioVsock}: who answers the connections the guest opens. */
@FunctionalInterface
public interface VsockHost {
    /**
     * The guest asks for a connection to host port {@code port}, from its port {@code guestPort}.
     * Returns the host end as a connected stream socket, which the device then owns and relays (it
     * makes it non-blocking), or null if nobody listens there: the guest gets a RST. Called on the
     * device thread: must not block for long.
     */
    Fd guestConnects(int port, int guestPort);
}
