package dev.kindling.devices.virtio.net;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.devices.virtio.FakeVirtioContext;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.sys.Poller;
import dev.kindling.testing.HostResources;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class NetSwitchTest {
    private static final long BROADCAST = 0xFFFF_FFFF_FFFFL;
    private static final long A = 0x02_00_00_00_00_0AL, B = 0x02_00_00_00_00_0BL, C = 0x02_00_00_00_00_0CL;

    private final Arena arena = Arena.ofAuto();

    /** An Ethernet frame from {@code src} to {@code dst} whose payload is {@code tag} then padding. */
    private MemorySegment frame(long dst, long src, int tag, int length) {
        ByteBuffer b = ByteBuffer.allocate(length);
        b.putShort((short) (dst >>> 32)).putInt((int) dst);
        b.putShort((short) (src >>> 32)).putInt((int) src);
        b.putShort((short) 0x88B5); // local experimental EtherType
        b.putInt(tag);
        return arena.allocateFrom(JAVA_BYTE, b.array());
    }

    private MemorySegment frame(long dst, long src, int tag) {
        return frame(dst, src, tag, 60);
    }

    /** The tags of the frames waiting at {@code port}, in order; asserts readable() agrees. */
    private List<Integer> drain(NetBackend port) {
        List<Integer> tags = new ArrayList<>();
        MemorySegment buf = arena.allocate(NetSwitch.MAX_FRAME);
        for (int i = 0; i <= NetSwitch.QUEUE_FRAMES; i++) {
            boolean readable = Poller.waitReadable(port.readable(), 0);
            int n = port.receive(buf);
            assertThat(readable).as("readable() while a frame waits").isEqualTo(n > 0);
            if (n == 0) {
                return tags;
            }
            tags.add(buf.asSlice(14, 4).asByteBuffer().getInt());
        }
        throw new AssertionError("port never drained");
    }

    @Test
    void floodsUnknownAndBroadcastThenLearns() {
        try (NetSwitch sw = new NetSwitch("test")) {
            NetBackend a = sw.connect(), b = sw.connect(), c = sw.connect();
            assertThat(a.vnetHeader()).isFalse();
            assertThat(Poller.waitReadable(a.readable(), 0)).isFalse();

            assertThat(a.send(frame(B, A, 1))).isTrue(); // B unknown: flooded
            assertThat(drain(a)).isEmpty();
            assertThat(drain(b)).containsExactly(1);
            assertThat(drain(c)).containsExactly(1);

            assertThat(b.send(frame(A, B, 2))).isTrue(); // A learned on a
            assertThat(drain(a)).containsExactly(2);
            assertThat(drain(c)).isEmpty();

            assertThat(a.send(frame(B, A, 3))).isTrue(); // B learned on b
            assertThat(drain(b)).containsExactly(3);
            assertThat(drain(c)).isEmpty();

            assertThat(c.send(frame(BROADCAST, C, 4))).isTrue();
            assertThat(c.send(frame(0x01_00_5E_00_00_01L, C, 5))).isTrue(); // multicast
            assertThat(drain(a)).containsExactly(4, 5);
            assertThat(drain(b)).containsExactly(4, 5);
            assertThat(drain(c)).isEmpty();
        }
    }

    @Test
    void framesToTheSendersOwnPortAreNotDelivered() {
        try (NetSwitch sw = new NetSwitch("test")) {
            NetBackend a = sw.connect(), b = sw.connect();
            a.send(frame(BROADCAST, A, 1));
            drain(b);
            a.send(frame(A, 0x02_00_00_00_00_0DL, 2)); // to A, which is behind a itself
            assertThat(drain(a)).isEmpty();
            assertThat(drain(b)).isEmpty();
        }
    }

    @Test
    void aMacThatMovesIsRelearned() {
        try (NetSwitch sw = new NetSwitch("test")) {
            NetBackend a = sw.connect(), b = sw.connect(), c = sw.connect();
            a.send(frame(BROADCAST, A, 1));
            b.send(frame(BROADCAST, A, 2)); // A now behind b
            drain(a);
            drain(b);
            drain(c);
            c.send(frame(A, C, 3));
            assertThat(drain(b)).containsExactly(3);
            assertThat(drain(a)).isEmpty();
        }
    }

    @Test
    void theAddressTableIsBoundedPerPortAndInAllAndFloodsBeyond() {
        try (NetSwitch sw = new NetSwitch("test")) {
            List<NetBackend> ports = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                ports.add(sw.connect());
            }
            NetBackend a = ports.get(0), b = ports.get(1);
            long base = 0x02_00_00_10_00_00L;
            for (int i = 0; i < 4 * NetSwitch.LEARNED_PER_PORT; i++) {
                a.send(frame(BROADCAST, base + i, i));
            }
            assertThat(sw.learnedCount()).isEqualTo(NetSwitch.LEARNED_PER_PORT);
            for (NetBackend p : ports) {
                drain(p);
            }
            // one learned behind a goes to a alone; one a sent from beyond its bound is flooded
            b.send(frame(base, B, 1));
            assertThat(drain(a)).containsExactly(1);
            assertThat(drain(ports.get(2))).isEmpty();
            b.send(frame(base + NetSwitch.LEARNED_PER_PORT, B, 2));
            assertThat(drain(a)).containsExactly(2);
            assertThat(drain(ports.get(2))).containsExactly(2);
            for (NetBackend p : ports) {
                drain(p);
            }
            // the other ports fill the table to its total bound
            for (int p = 1; p < ports.size(); p++) {
                for (int i = 0; i < NetSwitch.LEARNED_PER_PORT; i++) {
                    ports.get(p).send(frame(BROADCAST, base + ((long) p << 16) + i, i));
                }
                for (NetBackend q : ports) {
                    drain(q);
                }
            }
            assertThat(sw.learnedCount()).isEqualTo(NetSwitch.LEARNED_MAX);
            // an address seen again on another port moves there, even with the table full
            NetBackend e = ports.get(4);
            e.send(frame(BROADCAST, base, 3));
            for (NetBackend p : ports) {
                drain(p);
            }
            ports.get(2).send(frame(base, C, 4));
            assertThat(drain(e)).containsExactly(4);
            assertThat(drain(a)).isEmpty();
            assertThat(sw.learnedCount()).isEqualTo(NetSwitch.LEARNED_MAX);
            // a closed port's addresses are forgotten, making room
            a.close();
            assertThat(sw.learnedCount()).isLessThan(NetSwitch.LEARNED_MAX);
        }
    }

    @Test
    void rejectsRuntsAndGiants() {
        try (NetSwitch sw = new NetSwitch("test")) {
            NetBackend a = sw.connect(), b = sw.connect();
            assertThat(a.send(arena.allocate(13))).isFalse();
            assertThat(a.send(frame(B, A, 1, NetSwitch.MAX_FRAME + 1))).isFalse();
            assertThat(a.send(frame(B, A, 2, NetSwitch.MAX_FRAME))).isTrue();
            assertThat(drain(b)).containsExactly(2);
        }
    }

    @Test
    void aFrameLargerThanTheBufferIsDroppedAndTheNextReturned() {
        try (NetSwitch sw = new NetSwitch("test")) {
            NetBackend a = sw.connect();
            NetSwitch.Port b = (NetSwitch.Port) sw.connect();
            a.send(frame(B, A, 1, 1500));
            a.send(frame(B, A, 2, 100));
            MemorySegment small = arena.allocate(200);
            assertThat(b.receive(small)).isEqualTo(100);
            assertThat(small.asSlice(14, 4).asByteBuffer().getInt()).isEqualTo(2);
            assertThat(b.dropped()).isEqualTo(1);
            assertThat(Poller.waitReadable(b.readable(), 0)).isFalse();
        }
    }

    @Test
    void queuesAreBoundedInFramesAndBytes() {
        try (NetSwitch sw = new NetSwitch("test")) {
            NetBackend a = sw.connect();
            NetSwitch.Port b = (NetSwitch.Port) sw.connect();
            for (int i = 0; i < NetSwitch.QUEUE_FRAMES + 10; i++) {
                assertThat(a.send(frame(B, A, i))).as("accepted by the switch, dropped at egress").isTrue();
            }
            assertThat(b.queued()).isEqualTo(NetSwitch.QUEUE_FRAMES);
            assertThat(b.dropped()).isEqualTo(10);
            List<Integer> tags = drain(b);
            assertThat(tags).hasSize(NetSwitch.QUEUE_FRAMES);
            assertThat(tags.get(0)).isZero();
            assertThat(tags.get(tags.size() - 1)).isEqualTo(NetSwitch.QUEUE_FRAMES - 1);

            int big = 60_000;
            long fit = NetSwitch.QUEUE_BYTES / big;
            for (int i = 0; i < fit + 3; i++) {
                a.send(frame(B, A, i, big));
            }
            assertThat(b.queued()).isEqualTo((int) fit);
            assertThat(drain(b)).hasSize((int) fit);
        }
    }

    @Test
    void aClosedPortLeavesTheSwitch() {
        try (NetSwitch sw = new NetSwitch("test")) {
            NetBackend a = sw.connect(), b = sw.connect(), c = sw.connect();
            b.send(frame(BROADCAST, B, 1));
            drain(a);
            drain(c);
            b.close();
            b.close(); // idempotent
            assertThat(sw.portCount()).isEqualTo(2);
            assertThat(b.send(frame(A, B, 2))).isFalse();
            assertThat(b.receive(arena.allocate(100))).isZero();
            a.send(frame(B, A, 3)); // B forgotten: flooded to the ports left
            assertThat(drain(c)).containsExactly(3);
        }
    }

    @Test
    void closingTheSwitchClosesEveryPortAndFreesTheirDescriptors() {
        HostResources before = HostResources.now();
        NetSwitch sw = new NetSwitch("test");
        List<NetBackend> ports = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            ports.add(sw.connect());
        }
        ports.get(0).send(frame(BROADCAST, A, 1));
        ports.get(3).close();
        assertThat(ports.get(3).readable().isOpen()).isFalse();
        sw.close();
        assertThat(sw.portCount()).isZero();
        MemorySegment buf = arena.allocate(NetSwitch.MAX_FRAME);
        for (NetBackend p : ports) {
            if (p == ports.get(3)) {
                continue;
            }
            // a device may still watch the port's descriptor: it stays open, and quiet
            assertThat(p.readable().isOpen()).isTrue();
            assertThat(Poller.waitReadable(p.readable(), 0)).as("readable after the switch closed").isFalse();
            assertThat(p.receive(buf)).isZero();
            assertThat(p.send(frame(B, A, 2))).isFalse();
        }
        assertThatThrownBy(sw::connect).isInstanceOf(IllegalStateException.class).hasMessageContaining("test");
        for (NetBackend p : ports) {
            p.close(); // by their owners: frees their descriptors
            assertThat(p.readable().isOpen()).isFalse();
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aDeviceOnAPortOfASwitchClosedUnderItGoesOnWithoutFailing() throws Exception {
        NetSwitch sw = new NetSwitch("test");
        NetBackend peer = sw.connect();
        VirtqueueDriver rx = VirtqueueDriver.create(256, NetHarness.RING);
        VirtqueueDriver tx = rx.sibling(256);
        try (FakeVirtioContext context = new FakeVirtioContext(NetHarness.RING | VirtioNet.MRG_RXBUF, List.of(rx, tx))) {
            NetSwitch.Port port = (NetSwitch.Port) sw.connect();
            VirtioNet net = new VirtioNet("net0", NetHarness.MAC, port);
            try {
                net.activate(context);
                peer.send(frame(BROADCAST, A, 1)); // no receive buffers: the device holds it and stops watching
                NetHarness.await("the device took the frame", () -> port.queued() == 0);
                assertThat(net.statistics().rxFrames()).isZero();
                sw.close();
                rx.add(List.of(VirtqueueDriver.writable(2048)));
                context.kick(VirtioNet.RX_QUEUE); // delivers the held frame, then watches the port again
                NetHarness.awaitUsed(rx, 1);
                NetHarness.await("delivered", () -> net.statistics().rxFrames() == 1);
                // and it still serves its queues: a frame sent to a closed switch is dropped and returned
                tx.add(List.of(VirtqueueDriver.readable(NetHarness.plainHeader()),
                        VirtqueueDriver.readable(frame(B, 0x52_54_00_12_34_56L, 2).toArray(JAVA_BYTE))));
                context.kick(VirtioNet.TX_QUEUE);
                NetHarness.awaitUsed(tx, 1);
                assertThat(net.statistics().txDropped()).isEqualTo(1);
                assertThat(context.fatals()).as("fatal reports").isEmpty();
                assertThat(context.resets()).as("resets asked").isEmpty();
            } finally {
                net.close();
                peer.close();
            }
        } finally {
            rx.close();
        }
    }

    @Test
    void manySendersAtOnceLoseNothingWithinTheQueueBound() throws Exception {
        int senders = 4, perSender = 50; // 200 frames: within one port's queue
        try (NetSwitch sw = new NetSwitch("test"); ExecutorService pool = Executors.newFixedThreadPool(senders)) {
            NetSwitch.Port sink = (NetSwitch.Port) sw.connect();
            long sinkMac = 0x02_00_00_00_00_FFL;
            sink.send(frame(BROADCAST, sinkMac, -1));
            List<NetBackend> ports = new ArrayList<>();
            for (int s = 0; s < senders; s++) {
                ports.add(sw.connect());
            }
            List<Future<?>> done = new ArrayList<>();
            for (int s = 0; s < senders; s++) {
                NetBackend port = ports.get(s);
                int id = s;
                done.add(pool.submit(() -> {
                    Arena local = Arena.ofConfined();
                    for (int i = 0; i < perSender; i++) {
                        ByteBuffer b = ByteBuffer.allocate(60);
                        b.putShort((short) (sinkMac >>> 32)).putInt((int) sinkMac).putShort((short) 2).putInt(id)
                                .putShort((short) 0x88B5).putInt(id << 16 | i);
                        port.send(local.allocateFrom(JAVA_BYTE, b.array()));
                    }
                    local.close();
                }));
            }
            for (Future<?> f : done) {
                f.get(30, TimeUnit.SECONDS);
            }
            Set<Integer> tags = new HashSet<>(drain(sink));
            assertThat(tags).hasSize(senders * perSender);
            assertThat(sink.dropped()).isZero();
        }
    }

    @Test
    void aReceiverDrainingWhileOthersSendIsNeverLeftUnwoken() throws Exception {
        int senders = 3, perSender = 1000;
        try (NetSwitch sw = new NetSwitch("test"); ExecutorService pool = Executors.newFixedThreadPool(senders)) {
            NetSwitch.Port sink = (NetSwitch.Port) sw.connect();
            List<NetBackend> ports = new ArrayList<>();
            for (int s = 0; s < senders; s++) {
                ports.add(sw.connect());
            }
            List<Future<?>> done = new ArrayList<>();
            for (NetBackend port : ports) {
                done.add(pool.submit(() -> {
                    try (Arena local = Arena.ofConfined()) {
                        MemorySegment f = local.allocateFrom(JAVA_BYTE, new byte[60]);
                        f.fill((byte) 0xFF); // broadcast from a multicast source: flooded, never learned
                        for (int i = 0; i < perSender; i++) {
                            port.send(f);
                        }
                    }
                }));
            }
            int total = senders * perSender;
            long received = 0;
            MemorySegment buf = arena.allocate(100);
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (received + sink.dropped() < total && System.nanoTime() < deadline) {
                // only when woken: a frame queued with the eventfd cleared would stall here
                if (Poller.waitReadable(sink.readable(), 100)) {
                    while (sink.receive(buf) > 0) {
                        received++;
                    }
                }
            }
            for (Future<?> f : done) {
                f.get(30, TimeUnit.SECONDS);
            }
            assertThat(received + sink.dropped()).as("received %d, dropped %d", received, sink.dropped()).isEqualTo(total);
            assertThat(sink.queued()).isZero();
        }
    }
}
