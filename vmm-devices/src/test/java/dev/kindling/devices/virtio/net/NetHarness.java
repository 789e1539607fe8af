package dev.kindling.devices.virtio.net;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.FakeVirtioContext;
import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/** A virtio-net device on a {@link QueueBackend}, with a mock driver for its two queues. */
final class NetHarness implements AutoCloseable {
    static final long RING = VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX | VirtioFeatures.RING_INDIRECT_DESC;
    static final long WAIT_MS = 5_000;
    static final MacAddress MAC = MacAddress.parse("52:54:00:12:34:56");

    final QueueBackend backend;
    final VirtqueueDriver rx;
    final VirtqueueDriver tx;
    final FakeVirtioContext context;
    final VirtioNet net;

    /** A device whose driver accepted {@code deviceFeatures} (and VERSION_1 and the ring features). */
    NetHarness(boolean vnetHeader, long deviceFeatures) {
        this(vnetHeader, deviceFeatures, 256);
    }

    NetHarness(boolean vnetHeader, long deviceFeatures, int queueSize) {
        backend = new QueueBackend(vnetHeader);
        rx = VirtqueueDriver.create(queueSize, RING);
        tx = rx.sibling(queueSize);
        context = new FakeVirtioContext(RING | deviceFeatures, List.of(rx, tx));
        net = new VirtioNet("net0", MAC, backend);
    }

    NetHarness activate() {
        net.activate(context);
        return this;
    }

    /** Posts {@code count} receive chains of one writable buffer of {@code size} bytes each, and kicks. */
    List<Integer> postRx(int count, int size) {
        List<Integer> heads = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            heads.add(rx.add(List.of(VirtqueueDriver.writable(size))));
        }
        context.kick(VirtioNet.RX_QUEUE);
        return heads;
    }

    /** Sends one frame (header and frame) in one readable chain split in two buffers, and kicks. */
    int send(byte[] header, byte[] frame) {
        int head = tx.add(List.of(VirtqueueDriver.readable(header), VirtqueueDriver.readable(frame)));
        context.kick(VirtioNet.TX_QUEUE);
        return head;
    }

    static List<Used> awaitUsed(VirtqueueDriver driver, int n) throws InterruptedException {
        List<Used> all = new ArrayList<>();
        long end = System.nanoTime() + WAIT_MS * 1_000_000;
        while (all.size() < n && System.nanoTime() < end) {
            Optional<Used> u = driver.used();
            if (u.isPresent()) {
                all.add(u.get());
            } else {
                Thread.sleep(1);
            }
        }
        assertThat(all).as("used chains").hasSize(n);
        return all;
    }

    static void await(String what, BooleanSupplier condition) throws InterruptedException {
        await(what, condition, () -> "");
    }

    /** Waits for {@code condition}; a failure says {@code what} and what {@code state} tells then. */
    static void await(String what, BooleanSupplier condition, Supplier<String> state) throws InterruptedException {
        long end = System.nanoTime() + WAIT_MS * 1_000_000;
        while (!condition.getAsBoolean() && System.nanoTime() < end) {
            Thread.sleep(1);
        }
        assertThat(condition.getAsBoolean()).as(() -> what + ": " + state.get()).isTrue();
    }

    /** A {@code struct virtio_net_hdr_v1}. */
    static byte[] header(int flags, int gsoType, int hdrLen, int gsoSize, int csumStart, int csumOffset, int numBuffers) {
        return ByteBuffer.allocate(VirtioNet.VNET_HEADER_SIZE).order(ByteOrder.LITTLE_ENDIAN)
                .put((byte) flags).put((byte) gsoType).putShort((short) hdrLen).putShort((short) gsoSize)
                .putShort((short) csumStart).putShort((short) csumOffset).putShort((short) numBuffers).array();
    }

    static byte[] plainHeader() {
        return header(0, 0, 0, 0, 0, 0, 0);
    }

    static int numBuffers(byte[] header) {
        return Short.toUnsignedInt(ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN).getShort(10));
    }

    /** An Ethernet frame of {@code length} bytes: destination, source, IPv4 ethertype, then a pattern from {@code seed}. */
    static byte[] frame(int length, int seed) {
        byte[] f = new byte[length];
        byte[] dst = MAC.bytes();
        System.arraycopy(dst, 0, f, 0, Math.min(6, length));
        for (int i = 6; i < length; i++) {
            f[i] = (byte) (i * 31 + seed * 7 + (i >>> 8));
        }
        if (length >= 14) {
            f[12] = 0x08;
            f[13] = 0x00;
        }
        return f;
    }

    static byte[] concat(byte[]... parts) {
        int n = 0;
        for (byte[] p : parts) {
            n += p.length;
        }
        byte[] out = new byte[n];
        int at = 0;
        for (byte[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    @Override
    public void close() {
        net.close();
        assertThat(context.recordingThreads().alive()).as("device threads after close").isEmpty();
        assertThat(backend.isClosed()).as("backend closed with the device").isTrue();
        context.close();
        rx.close();
    }
}
