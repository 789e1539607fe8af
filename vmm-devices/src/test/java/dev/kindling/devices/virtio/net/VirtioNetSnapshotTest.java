package dev.kindling.devices.virtio.net;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.devices.virtio.mmio.MmioDriver;
import dev.kindling.devices.virtio.FakeDeviceContext;
import dev.kindling.devices.virtio.mmio.VirtioMmioTransport;
import dev.kindling.snapshot.SnapshotException;
import org.junit.jupiter.api.Test;

class VirtioNetSnapshotTest {
    @Test
    void virtioNetRefusesToBeSnapshotted() {
        try (FakeDeviceContext ctx = new FakeDeviceContext();
                VirtioMmioTransport t = new VirtioMmioTransport(
                        new VirtioNet("net0", MacAddress.parse("02:00:00:00:00:01"), new QueueBackend(false)), ctx, 0xd000_0000L)) {
            assertThatThrownBy(() -> MmioDriver.snapshot(t)).isInstanceOf(SnapshotException.class)
                    .hasMessageContaining("virtio-net cannot be snapshotted yet");
        }
    }
}
