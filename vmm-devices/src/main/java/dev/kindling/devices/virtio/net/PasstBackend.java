package dev.kindling.devices.virtio.net;

import dev.kindling.sys.Fd;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * passt, the user-mode network daemon (libkrun's and podman's): a Unix stream socket carrying each
 * Ethernet frame after its length as 4 bytes big-endian, as QEMU's {@code -netdev stream} does. It
 * gives the guest outbound TCP and UDP with no root and no host set-up. Started by Kindling (and
 * ended with the backend) unless {@link PasstOptions#socket()} names one already running.
 */
public final class PasstBackend implements NetBackend {
    private PasstBackend() {}

    public static PasstBackend open(PasstOptions options) throws IOException {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public Fd readable() {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public boolean vnetHeader() {
        return false;
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
