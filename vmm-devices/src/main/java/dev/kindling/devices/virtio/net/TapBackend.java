package dev.kindling.devices.virtio.net;

import dev.kindling.sys.Fd;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * A tap device ({@code /dev/net/tun}, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR), non-blocking: the usual
 * root set-up, as Firecracker's {@code host_dev_name}.
 */
public final class TapBackend implements NetBackend {
    private TapBackend() {}

    /** Attaches to tap {@code name}, creating it if it does not exist (as root can). */
    public static TapBackend open(String name) throws IOException {
        throw new UnsupportedOperationException("not yet");
    }

    /** The interface name the kernel gave (as asked). */
    public String name() {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public Fd readable() {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public boolean vnetHeader() {
        return true;
    }

    @Override
    public int receive(MemorySegment into) {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public boolean send(MemorySegment frame) {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public void close() {
        throw new UnsupportedOperationException("not yet");
    }
}
