package dev.kindling.devices.virtio.net;

import dev.kindling.devices.virtio.VirtioContext;
import dev.kindling.devices.virtio.VirtioDevice;
import dev.kindling.devices.virtio.VirtioIds;
import java.util.Objects;

/**
 * virtio-net (virtio 1.2 section 5.1, device ID 1): one receive and one transmit queue, the MAC in
 * configuration space, mergeable receive buffers, and, when the backend takes vnet headers,
 * checksum and TCP segmentation offloads both ways.
 */
public final class VirtioNet implements VirtioDevice {
    /** {@code struct virtio_net_hdr_v1}: the header before every frame, with VERSION_1 or MRG_RXBUF. */
    public static final int VNET_HEADER_SIZE = 12;

    private final String name;
    private final MacAddress mac;
    private final NetBackend backend;

    /** A device with guest MAC {@code mac} on {@code backend}, which it closes with itself. */
    public VirtioNet(String name, MacAddress mac, NetBackend backend) {
        this.name = Objects.requireNonNull(name, "name");
        this.mac = Objects.requireNonNull(mac, "mac");
        this.backend = Objects.requireNonNull(backend, "backend");
    }

    public MacAddress mac() {
        return mac;
    }

    @Override
    public int deviceType() {
        return VirtioIds.NET;
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
        return 2;
    }

    @Override
    public int queueMaxSize(int index) {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public int configSize() {
        throw new UnsupportedOperationException("not yet");
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
