package dev.kindling.devices.virtio.net;

import static dev.kindling.devices.virtio.net.NetHarness.awaitUsed;
import static dev.kindling.devices.virtio.net.NetHarness.concat;
import static dev.kindling.devices.virtio.net.NetHarness.header;
import static dev.kindling.devices.virtio.net.NetHarness.numBuffers;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.queue.ChainFuzzing;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Buffer;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import dev.kindling.testing.Fuzz;
import dev.kindling.testing.Gen;
import dev.kindling.testing.HostResources;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Seeded random traffic both ways, with malformed chains and headers among it: what the device sends
 * and delivers is what an independent reading of the spec says, nothing throws, the queues never
 * need a reset, and every frame from the backend ends delivered or counted as dropped.
 */
class VirtioNetFuzzTest {
    private static final int HDR = VirtioNet.VNET_HEADER_SIZE;

    @Test
    void randomTrafficBothWays() {
        Fuzz.check("virtio-net traffic", 300, VirtioNetFuzzTest::oneTry);
    }

    private static void oneTry(Gen g) throws Exception {
        boolean vnet = g.bool();
        long offered = VirtioNet.MAC | VirtioNet.STATUS | VirtioNet.MRG_RXBUF | (vnet ? VirtioNet.OFFLOADS : 0);
        long accepted = offered & g.anyLong();
        try (NetHarness h = new NetHarness(vnet, accepted).activate()) {
            transmit(g, h, accepted);
            hostileTransmit(g, h);
            receive(g, h, vnet, accepted);
            assertThat(h.context.resets()).isEmpty();
            assertThat(h.context.fatals()).isEmpty();
        }
    }

    /** A header, valid or not for what was negotiated. */
    private static byte[] randomHeader(Gen g, int frameLength) {
        int flags = g.pickInt(0, 0, NetAbi.HDR_F_NEEDS_CSUM, NetAbi.HDR_F_DATA_VALID, g.between(0, 255));
        int gso = g.pickInt(NetAbi.GSO_NONE, NetAbi.GSO_NONE, NetAbi.GSO_TCPV4, NetAbi.GSO_TCPV6, NetAbi.GSO_UDP,
                NetAbi.GSO_TCPV4 | NetAbi.GSO_ECN, g.between(0, 255));
        int start = g.bool() ? g.between(0, Math.max(0, frameLength - 4)) : g.between(0, 0xffff);
        int offset = g.pickInt(6, 16, g.between(0, 0xffff));
        return header(flags, gso, g.between(0, 200), g.pickInt(0, 1448, g.between(0, 0xffff)), start, offset, g.between(0, 3));
    }

    private static int frameLength(Gen g) {
        return switch (g.weighted(6, 2, 1, 1)) {
            case 0 -> g.between(0, 1600);
            case 1 -> g.between(1600, 20_000);
            case 2 -> g.between(VirtioNet.MAX_FRAME - 20, VirtioNet.MAX_FRAME + 20);
            default -> g.between(0, 40);
        };
    }

    /** Driver-built chains: the backend gets exactly the ones the oracle says, in order. */
    private static void transmit(Gen g, NetHarness h, long negotiated) throws Exception {
        int n = g.between(0, 8);
        List<byte[]> expected = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int length = frameLength(g);
            byte[] packet = concat(randomHeader(g, length), g.bytes(length, length));
            if (g.oneIn(4)) {
                packet = Arrays.copyOf(packet, g.between(0, packet.length)); // maybe shorter than a header
            }
            List<Buffer> buffers = new ArrayList<>();
            int cuts = g.between(1, 3);
            int at = 0;
            for (int c = 1; c <= cuts; c++) {
                int end = c == cuts ? packet.length : g.between(at, packet.length);
                buffers.add(VirtqueueDriver.readable(Arrays.copyOfRange(packet, at, end)));
                at = end;
            }
            boolean writable = g.oneIn(8);
            if (writable) {
                buffers.add(VirtqueueDriver.writable(g.between(1, 64)));
            }
            if (g.bool()) {
                h.tx.addIndirect(buffers);
            } else {
                h.tx.add(buffers);
            }
            if (!writable && sendable(packet, negotiated)) {
                expected.add(h.backend.vnetHeader() ? packet : Arrays.copyOfRange(packet, HDR, packet.length));
            }
        }
        h.context.kick(VirtioNet.TX_QUEUE);
        List<Used> used = awaitUsed(h.tx, n);
        assertThat(used).extracting(Used::length).allMatch(l -> l == 0);
        List<byte[]> sent = h.backend.drainSent();
        assertThat(sent).hasSameSizeAs(expected);
        for (int i = 0; i < sent.size(); i++) {
            assertThat(sent.get(i)).as("frame %d", i).isEqualTo(expected.get(i));
        }
    }

    /** virtio 1.2 5.1.6.2: what a device may send, read from the spec rather than from the device. */
    private static boolean sendable(byte[] packet, long negotiated) {
        if (packet.length < HDR + 14 || packet.length > VirtioNet.MAX_PACKET) {
            return false;
        }
        ByteBuffer b = ByteBuffer.wrap(packet).order(ByteOrder.LITTLE_ENDIAN);
        int flags = b.get(0) & 0xff;
        int gso = b.get(1) & 0xff;
        int gsoSize = b.getShort(4) & 0xffff;
        int start = b.getShort(6) & 0xffff;
        int offset = b.getShort(8) & 0xffff;
        boolean csum = (flags & NetAbi.HDR_F_NEEDS_CSUM) != 0;
        if ((flags & ~NetAbi.HDR_F_NEEDS_CSUM) != 0) {
            return false;
        }
        if (csum && ((negotiated & VirtioNet.CSUM) == 0 || start + offset + 2 > packet.length - HDR)) {
            return false;
        }
        if (gso == NetAbi.GSO_NONE) {
            return true;
        }
        boolean ecn = (gso & NetAbi.GSO_ECN) != 0;
        int type = gso & ~NetAbi.GSO_ECN;
        boolean typeOk = (type == NetAbi.GSO_TCPV4 && (negotiated & VirtioNet.HOST_TSO4) != 0)
                || (type == NetAbi.GSO_TCPV6 && (negotiated & VirtioNet.HOST_TSO6) != 0);
        return typeOk && (!ecn || (negotiated & VirtioNet.HOST_ECN) != 0) && csum && gsoSize != 0;
    }

    /** Raw descriptors anywhere (loops, outside RAM, past the table): each is returned, then a good frame goes out. */
    private static void hostileTransmit(Gen g, NetHarness h) throws Exception {
        int size = h.tx.size();
        int n = g.between(0, 6);
        for (int i = 0; i < n; i++) {
            int index = size - 1 - i;
            ChainFuzzing.Raw r = ChainFuzzing.raw(g, size);
            h.tx.rawDescriptor(index, r.address(), r.length(), r.flags(), r.next());
            h.tx.publishHead(index);
        }
        byte[] good = NetHarness.frame(g.between(14, 1514), g.anyInt());
        h.send(header(0, 0, 0, 0, 0, 0, 0), good);
        awaitUsed(h.tx, n + 1);
        List<byte[]> sent = h.backend.drainSent();
        assertThat(sent).isNotEmpty();
        byte[] last = sent.get(sent.size() - 1);
        assertThat(h.backend.vnetHeader() ? Arrays.copyOfRange(last, HDR, last.length) : last).isEqualTo(good);
    }

    private record Injected(byte[] payload, int flags, int csumField) {}

    /**
     * Random frames and random receive chains (some malformed), then enough room for anything: every
     * frame ends delivered or dropped, the delivered ones in order and unchanged (but for a checksum
     * the device completed), with headers the guest negotiated.
     */
    private static void receive(Gen g, NetHarness h, boolean vnet, long negotiated) throws Exception {
        boolean mergeable = (negotiated & VirtioNet.MRG_RXBUF) != 0;
        List<Injected> injected = new ArrayList<>();
        int frames = g.between(0, 6);
        for (int i = 0; i < frames; i++) {
            int length = Math.max(1, frameLength(g)); // a backend has no empty frames: 0 is "none"
            byte[] payload = g.bytes(length, length);
            byte[] hdr = vnet ? randomHeader(g, length) : header(0, 0, 0, 0, 0, 0, 0);
            ByteBuffer b = ByteBuffer.wrap(hdr).order(ByteOrder.LITTLE_ENDIAN);
            injected.add(new Injected(payload, hdr[0] & 0xff, (b.getShort(6) & 0xffff) + (b.getShort(8) & 0xffff)));
            h.backend.inject(vnet ? concat(hdr, payload) : payload);
        }
        int chains = g.between(0, 12);
        for (int i = 0; i < chains; i++) {
            switch (g.weighted(6, 1, 1)) {
                case 0 -> h.rx.add(List.of(VirtqueueDriver.writable(g.between(1, 5000))));
                case 1 -> h.rx.add(List.of(VirtqueueDriver.readable(new byte[8]), VirtqueueDriver.writable(2048)));
                default -> h.rx.addIndirect(List.of(VirtqueueDriver.writable(g.between(1, 100)),
                        VirtqueueDriver.writable(g.between(1, 3000))));
            }
        }
        h.context.kick(VirtioNet.RX_QUEUE);
        // then room for every frame, whatever came before
        int room = mergeable ? 8192 : VirtioNet.MAX_PACKET;
        // a frame may leave most of its last chain unused
        int needed = mergeable ? frames * (VirtioNet.MAX_PACKET / room + 2) : frames;
        for (int i = 0; i < needed; i++) {
            h.rx.add(List.of(VirtqueueDriver.writable(room)));
        }
        h.context.kick(VirtioNet.RX_QUEUE);
        NetHarness.await("every frame delivered or dropped", () -> {
            VirtioNet.Statistics s = h.net.statistics();
            return s.rxFrames() + s.rxDropped() + h.backend.oversizeDropped.get() == frames;
        }, () -> h.net.statistics() + ", " + h.backend.oversizeDropped.get() + " too long, " + h.backend.waiting()
                + " waiting in the backend, of " + frames + " (mergeable " + mergeable + ")");
        List<Used> used = h.rx.usedAll();
        int at = 0;
        int delivered = 0;
        for (int u = 0; u < used.size(); ) {
            Used first = used.get(u);
            if (first.length() == 0) {
                u++;
                continue;
            }
            int buffers = numBuffers(first.written());
            assertThat(buffers).isBetween(1, used.size() - u);
            if (!mergeable) {
                assertThat(buffers).isOne();
            }
            byte[] all = new byte[0];
            for (int k = 0; k < buffers; k++) {
                assertThat(used.get(u + k).length()).isPositive();
                all = concat(all, used.get(u + k).written());
            }
            u += buffers;
            int flags = all[0] & 0xff;
            int gso = all[1] & 0xff;
            assertThat(flags & ~(NetAbi.HDR_F_NEEDS_CSUM | NetAbi.HDR_F_DATA_VALID)).isZero();
            if ((negotiated & VirtioNet.GUEST_CSUM) == 0) {
                assertThat(flags).isZero();
            }
            if (gso != NetAbi.GSO_NONE) {
                int type = gso & ~NetAbi.GSO_ECN;
                assertThat((type == NetAbi.GSO_TCPV4 && (negotiated & VirtioNet.GUEST_TSO4) != 0)
                        || (type == NetAbi.GSO_TCPV6 && (negotiated & VirtioNet.GUEST_TSO6) != 0)).as("gso " + gso).isTrue();
                if ((gso & NetAbi.GSO_ECN) != 0) {
                    assertThat(negotiated & VirtioNet.GUEST_ECN).isNotZero();
                }
            }
            byte[] frame = Arrays.copyOfRange(all, HDR, all.length);
            // the next injected frame it matches: the ones before it were dropped
            while (at < injected.size() && !matches(injected.get(at), frame, negotiated)) {
                at++;
            }
            assertThat(at).as("delivered frame %d is one injected, in order", delivered).isLessThan(injected.size());
            at++;
            delivered++;
        }
        assertThat((long) delivered).isEqualTo(h.net.statistics().rxFrames());
    }

    private static boolean matches(Injected in, byte[] frame, long negotiated) {
        if (in.payload().length != frame.length) {
            return false;
        }
        byte[] expected = in.payload();
        if ((in.flags() & NetAbi.HDR_F_NEEDS_CSUM) != 0 && (negotiated & VirtioNet.GUEST_CSUM) == 0) {
            int field = in.csumField();
            if (field + 2 > frame.length) {
                return false;
            }
            expected = expected.clone();
            expected[field] = frame[field];
            expected[field + 1] = frame[field + 1];
        }
        return Arrays.equals(expected, frame);
    }

    @Test
    void createActivateCloseCyclesLeaveNothing() throws Exception {
        for (int i = 0; i < 3; i++) {
            cycle(i); // warm up: classes, native bindings
        }
        HostResources before = HostResources.now();
        for (int i = 0; i < 100; i++) {
            cycle(i);
        }
        HostResources.now().assertNothingLeftSince(before, 32);
    }

    private static void cycle(int i) throws Exception {
        try (NetHarness h = new NetHarness(i % 2 == 0, VirtioNet.MRG_RXBUF, 16).activate()) {
            h.postRx(2, 2048);
            h.backend.inject(NetHarness.frame(100, i));
            h.send(header(0, 0, 0, 0, 0, 0, 0), NetHarness.frame(60, i));
            awaitUsed(h.tx, 1);
            if (i % 3 == 0) {
                h.net.reset();
                h.rx.queue().reset();
                h.rx.configure(h.rx.queue());
                h.tx.queue().reset();
                h.tx.configure(h.tx.queue());
                h.net.activate(h.context);
            }
            if (i % 4 == 1) {
                h.backend.inject(NetHarness.frame(100, i + 1)); // held: no buffers left
            }
        }
    }
}
