package dev.kindling.devices.virtio.net;

import static dev.kindling.devices.virtio.net.NetHarness.awaitUsed;
import static dev.kindling.devices.virtio.net.NetHarness.concat;
import static dev.kindling.devices.virtio.net.NetHarness.frame;
import static dev.kindling.devices.virtio.net.NetHarness.header;
import static dev.kindling.devices.virtio.net.NetHarness.numBuffers;
import static dev.kindling.devices.virtio.net.NetHarness.plainHeader;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.readable;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.VirtioIds;
import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class VirtioNetTest {
    private static final Duration WAIT = Duration.ofSeconds(5);
    private static final int NEEDS_CSUM = NetAbi.HDR_F_NEEDS_CSUM;

    /** Payload bytes of the frames the guest got, each with its header; the used entries in order. */
    private record Delivered(byte[] header, byte[] frame, int buffers) {}

    /** Reassembles the next frame from used receive chains: the first says how many buffers follow. */
    private static Delivered reassemble(List<Used> used, int from) {
        byte[] first = used.get(from).written();
        int buffers = numBuffers(first);
        byte[] all = new byte[0];
        for (int i = 0; i < buffers; i++) {
            all = concat(all, used.get(from + i).written());
        }
        return new Delivered(Arrays.copyOf(all, 12), Arrays.copyOfRange(all, 12, all.length), buffers);
    }

    @Test
    void describesItselfAndOffersOffloadsOnlyWithAVnetHeader() {
        try (NetHarness plain = new NetHarness(false, 0); NetHarness tap = new NetHarness(true, 0)) {
            VirtioNet net = plain.net;
            assertThat(net.deviceType()).isEqualTo(VirtioIds.NET);
            assertThat(net.queueCount()).isEqualTo(2);
            assertThat(net.queueMaxSize(0)).isEqualTo(256);
            assertThat(net.features()).isEqualTo(VirtioNet.MAC | VirtioNet.STATUS | VirtioNet.MRG_RXBUF);
            assertThat(tap.net.features()).isEqualTo(VirtioNet.MAC | VirtioNet.STATUS | VirtioNet.MRG_RXBUF
                    | VirtioNet.CSUM | VirtioNet.GUEST_CSUM | VirtioNet.HOST_TSO4 | VirtioNet.HOST_TSO6
                    | VirtioNet.HOST_ECN | VirtioNet.GUEST_TSO4 | VirtioNet.GUEST_TSO6 | VirtioNet.GUEST_ECN);
            assertThat(tap.net.features() & (VirtioNet.HOST_UFO | VirtioNet.GUEST_UFO)).isZero();
            // config: mac[6], status (LINK_UP), max_virtqueue_pairs
            assertThat(net.configSize()).isEqualTo(10);
            byte[] mac = new byte[6];
            for (int i = 0; i < 6; i++) {
                mac[i] = (byte) net.readConfig(i, 1);
            }
            assertThat(MacAddress.of(mac)).isEqualTo(NetHarness.MAC);
            assertThat(net.readConfig(0, 4)).isEqualTo(0x12005452L);
            assertThat(net.readConfig(6, 2)).isEqualTo(NetAbi.S_LINK_UP);
            assertThat(net.readConfig(8, 2)).isEqualTo(1);
            net.writeConfig(0, 4, 0); // read-only
            assertThat(net.readConfig(0, 1)).isEqualTo(0x52);
        }
    }

    @Test
    void transmitsAFrameWithItsHeaderToABackendThatTakesIt() throws Exception {
        try (NetHarness h = new NetHarness(true, VirtioNet.CSUM | VirtioNet.HOST_TSO4).activate()) {
            byte[] hdr = header(NEEDS_CSUM, NetAbi.GSO_TCPV4, 54, 1448, 34, 16, 0);
            byte[] f = frame(3000, 1);
            int head = h.send(hdr, f);
            assertThat(h.backend.awaitSent(WAIT)).isEqualTo(concat(hdr, f));
            Used u = awaitUsed(h.tx, 1).get(0);
            assertThat(u.id()).isEqualTo(head);
            assertThat(u.length()).isZero();
            assertThat(h.net.statistics().txFrames()).isEqualTo(1);
            assertThat(h.net.statistics().txBytes()).isEqualTo(3000);
            assertThat(h.context.interrupts(VirtioNet.TX_QUEUE)).isPositive();
        }
    }

    @Test
    void transmitsTheFrameAloneToABackendWithoutHeaders() throws Exception {
        try (NetHarness h = new NetHarness(false, 0).activate()) {
            byte[] f = frame(60, 2);
            h.tx.add(List.of(readable(concat(plainHeader(), Arrays.copyOf(f, 20))), readable(Arrays.copyOfRange(f, 20, 60))));
            h.context.kick(VirtioNet.TX_QUEUE);
            assertThat(h.backend.awaitSent(WAIT)).isEqualTo(f);
            awaitUsed(h.tx, 1);
        }
    }

    @Test
    void malformedTransmitChainsAreDroppedAndTheNextIsSent() throws Exception {
        try (NetHarness h = new NetHarness(false, 0).activate()) {
            int shorter = h.tx.add(List.of(readable(new byte[20]))); // a header and 8 bytes
            int withWritable = h.tx.add(List.of(readable(concat(plainHeader(), frame(60, 0))), writable(16)));
            int oversize = h.tx.add(List.of(readable(new byte[VirtioNet.MAX_PACKET + 1])));
            // asks for a checksum offload not offered (the backend takes no header)
            int offload = h.tx.add(List.of(readable(concat(header(NEEDS_CSUM, 0, 0, 0, 34, 16, 0), frame(100, 0)))));
            int gso = h.tx.add(List.of(readable(concat(header(NEEDS_CSUM, NetAbi.GSO_TCPV4, 54, 1448, 34, 16, 0), frame(100, 0)))));
            int loop = 200;
            h.tx.rawDescriptor(loop, h.tx.allocate(64), 64, Virtqueue.DESC_F_NEXT, loop);
            h.tx.publishHead(loop);
            byte[] good = frame(1514, 3);
            int ok = h.send(plainHeader(), good);
            assertThat(h.backend.awaitSent(WAIT)).isEqualTo(good);
            List<Used> used = awaitUsed(h.tx, 7);
            assertThat(used).extracting(Used::id).containsExactly(shorter, withWritable, oversize, offload, gso, loop, ok);
            assertThat(used).extracting(Used::length).containsOnly(0);
            assertThat(h.backend.drainSent()).isEmpty();
            VirtioNet.Statistics s = h.net.statistics();
            assertThat(s.txFrames()).isEqualTo(1);
            assertThat(s.txDropped()).isEqualTo(6);
            assertThat(s.badChains()).isEqualTo(4);
            assertThat(h.context.resets()).isEmpty();
        }
    }

    @Test
    void aFrameTheBackendRefusesIsCountedAsDropped() throws Exception {
        try (NetHarness h = new NetHarness(false, 0).activate()) {
            h.backend.refuse = true;
            h.send(plainHeader(), frame(100, 0));
            awaitUsed(h.tx, 1);
            assertThat(h.net.statistics().txDropped()).isEqualTo(1);
            assertThat(h.net.statistics().txFrames()).isZero();
        }
    }

    @Test
    void receivesIntoOneChainWithoutMergeableBuffers() throws Exception {
        try (NetHarness h = new NetHarness(false, 0).activate()) {
            List<Integer> heads = h.postRx(2, 1526);
            byte[] big = frame(1600, 0); // does not fit: dropped, the chain kept for the next
            byte[] f = frame(1514, 4);
            h.backend.inject(big);
            h.backend.inject(f);
            Used u = awaitUsed(h.rx, 1).get(0);
            assertThat(u.id()).isEqualTo(heads.get(0));
            assertThat(u.length()).isEqualTo(12 + 1514);
            assertThat(Arrays.copyOf(u.written(), 12)).isEqualTo(header(0, 0, 0, 0, 0, 0, 1));
            assertThat(Arrays.copyOfRange(u.written(), 12, u.length())).isEqualTo(f);
            assertThat(h.net.statistics().rxDropped()).isEqualTo(1);
            assertThat(h.net.statistics().rxFrames()).isEqualTo(1);
            assertThat(h.net.statistics().rxBytes()).isEqualTo(1514);
            assertThat(h.context.interrupts(VirtioNet.RX_QUEUE)).isPositive();
        }
    }

    @Test
    void spreadsA9000ByteFrameOver4KiBBuffers() throws Exception {
        try (NetHarness h = new NetHarness(false, VirtioNet.MRG_RXBUF).activate()) {
            h.postRx(4, 4096);
            byte[] jumbo = frame(9000, 5);
            h.backend.inject(jumbo);
            List<Used> used = awaitUsed(h.rx, 3);
            assertThat(used).extracting(Used::length).containsExactly(4096, 4096, 9012 - 8192);
            Delivered d = reassemble(used, 0);
            assertThat(d.buffers()).isEqualTo(3);
            assertThat(d.frame()).isEqualTo(jumbo);
            // the fourth chain is still there for the next frame
            byte[] small = frame(60, 6);
            h.backend.inject(small);
            Used next = awaitUsed(h.rx, 1).get(0);
            assertThat(numBuffers(next.written())).isEqualTo(1);
            assertThat(Arrays.copyOfRange(next.written(), 12, next.length())).isEqualTo(small);
        }
    }

    @Test
    void spreadsA64KiBGsoFrameOver1500ByteBuffersKeepingItsHeader() throws Exception {
        long accepted = VirtioNet.MRG_RXBUF | VirtioNet.GUEST_CSUM | VirtioNet.GUEST_TSO4 | VirtioNet.CSUM;
        try (NetHarness h = new NetHarness(true, accepted).activate()) {
            assertThat(h.backend.guestOffloads.get()).isEqualTo(VirtioNet.GUEST_CSUM | VirtioNet.GUEST_TSO4);
            h.postRx(50, 1536);
            byte[] hdr = header(NEEDS_CSUM, NetAbi.GSO_TCPV4, 66, 1448, 34, 16, 0);
            byte[] f = frame(VirtioNet.MAX_FRAME, 7);
            h.backend.inject(concat(hdr, f));
            int chains = (VirtioNet.MAX_PACKET + 1535) / 1536;
            assertThat(chains).isEqualTo(43);
            List<Used> used = awaitUsed(h.rx, chains);
            Delivered d = reassemble(used, 0);
            assertThat(d.buffers()).isEqualTo(chains);
            assertThat(d.header()).isEqualTo(header(NEEDS_CSUM, NetAbi.GSO_TCPV4, 66, 1448, 34, 16, chains));
            assertThat(d.frame()).isEqualTo(f);
            assertThat(h.net.statistics().rxBytes()).isEqualTo(VirtioNet.MAX_FRAME);
        }
    }

    @Test
    void aFrameLargerThanTheLargestIsDroppedByTheBackend() throws Exception {
        try (NetHarness h = new NetHarness(false, VirtioNet.MRG_RXBUF).activate()) {
            h.postRx(20, 4096);
            h.backend.inject(frame(VirtioNet.MAX_FRAME + 1, 0));
            byte[] f = frame(VirtioNet.MAX_FRAME, 1);
            h.backend.inject(f);
            List<Used> used = awaitUsed(h.rx, 17);
            assertThat(reassemble(used, 0).frame()).isEqualTo(f);
            assertThat(h.backend.oversizeDropped.get()).isEqualTo(1);
        }
    }

    @Test
    void withoutReceiveBuffersItHoldsOneFrameDoesNotSpinAndDeliversOnceBuffersCome() throws Exception {
        try (NetHarness h = new NetHarness(false, VirtioNet.MRG_RXBUF).activate()) {
            for (int i = 0; i < 3; i++) {
                h.backend.inject(frame(100 + i, i));
            }
            NetHarness.await("the device took one frame", () -> h.backend.waiting() == 2);
            assertThat(h.context.recordingThreads().alive()).hasSize(1);
            int calls = h.backend.receiveCalls.get();
            long rounds = h.net.rounds();
            // frames sent meanwhile wake the device: it serves them, and only them, while the backend stays readable
            int sends = 10;
            for (int i = 0; i < sends; i++) {
                h.send(plainHeader(), frame(60, i));
                assertThat(h.backend.awaitSent(WAIT)).isEqualTo(frame(60, i));
            }
            // a thread spinning on the readable backend would serve thousands of rounds in that time
            assertThat(h.net.rounds() - rounds).as("rounds for %d sends", sends).isLessThanOrEqualTo(3L * sends);
            assertThat(h.backend.receiveCalls.get()).as("backend reads while no buffers").isEqualTo(calls);
            assertThat(h.backend.waiting()).isEqualTo(2);
            h.postRx(3, 2048);
            List<Used> used = awaitUsed(h.rx, 3);
            for (int i = 0; i < 3; i++) {
                assertThat(reassemble(used, i).frame()).isEqualTo(frame(100 + i, i));
            }
            assertThat(h.backend.waiting()).isZero();
            // and it watches the backend again
            h.postRx(1, 2048);
            h.backend.inject(frame(64, 9));
            assertThat(reassemble(awaitUsed(h.rx, 1), 0).frame()).isEqualTo(frame(64, 9));
        }
    }

    @Test
    void aBackendReadableWithoutFramesIsLookedAtLessOftenNotSpunOn() throws Exception {
        try (NetHarness h = new NetHarness(false, VirtioNet.MRG_RXBUF).activate()) {
            h.backend.stuckReadable = true;
            h.backend.inject(frame(60, 1)); // makes the fd readable, for good
            h.postRx(2, 2048);
            awaitUsed(h.rx, 1);
            int calls = h.backend.receiveCalls.get();
            long start = System.nanoTime();
            // at most SPURIOUS_LIMIT reads per backoff: this many take at least three backoffs; spinning, microseconds
            int reads = 4 * VirtioNet.SPURIOUS_LIMIT;
            NetHarness.await("reads of a backend with nothing", () -> h.backend.receiveCalls.get() - calls >= reads);
            long elapsedMillis = (System.nanoTime() - start) / 1_000_000;
            assertThat(elapsedMillis).as("ms the device took for %d reads of a backend with nothing", reads)
                    .isGreaterThanOrEqualTo(3L * VirtioNet.SPURIOUS_BACKOFF_MILLIS);
            // a frame still arrives after the backoff
            h.backend.inject(frame(70, 2));
            assertThat(reassemble(awaitUsed(h.rx, 1), 0).frame()).isEqualTo(frame(70, 2));
        }
    }

    @Test
    void aBackendThatThrowsIsReportedOnceAndItsFramesDropped() throws Exception {
        try (NetHarness h = new NetHarness(false, 0).activate()) {
            h.backend.failSend = true;
            h.send(plainHeader(), frame(60, 0));
            h.send(plainHeader(), frame(60, 1));
            awaitUsed(h.tx, 2);
            assertThat(h.context.fatals()).hasSize(1);
            assertThat(h.context.resets()).isEmpty();
            assertThat(h.net.statistics().txDropped()).isEqualTo(2);
        }
    }

    @Test
    void malformedReceiveChainsAreReturnedEmptyAndTheNextGetsTheFrame() throws Exception {
        try (NetHarness h = new NetHarness(false, VirtioNet.MRG_RXBUF).activate()) {
            int withReadable = h.rx.add(List.of(readable(new byte[4]), writable(2048)));
            int tiny = h.rx.add(List.of(writable(8)));
            int outside = 250;
            h.rx.rawDescriptor(outside, h.rx.outsideRam(), 2048, Virtqueue.DESC_F_WRITE, 0);
            h.rx.publishHead(outside);
            int good = h.rx.add(List.of(writable(1024), writable(1024)));
            h.context.kick(VirtioNet.RX_QUEUE);
            byte[] f = frame(1500, 3);
            h.backend.inject(f);
            List<Used> used = awaitUsed(h.rx, 4);
            assertThat(used).extracting(Used::id).containsExactly(withReadable, tiny, outside, good);
            assertThat(used).extracting(Used::length).containsExactly(0, 0, 0, 1512);
            assertThat(reassemble(used, 3).frame()).isEqualTo(f);
            assertThat(h.net.statistics().badChains()).isEqualTo(3);
            assertThat(h.context.resets()).isEmpty();
        }
    }

    @Test
    void aPartialChecksumTheGuestCannotTakeIsCompletedAndSegmentationItDidNotAcceptIsDropped() throws Exception {
        try (NetHarness h = new NetHarness(true, VirtioNet.MRG_RXBUF).activate()) {
            assertThat(h.backend.guestOffloads.get()).isZero();
            h.postRx(4, 2048);
            // an IPv4/UDP-like frame: checksum from 34, field at 34 + 6 holding the pseudo-header sum
            byte[] f = frame(301, 8); // odd length: the last byte is padded
            f[40] = 0x12;
            f[41] = 0x34;
            h.backend.inject(concat(header(NEEDS_CSUM, NetAbi.GSO_TCPV4, 54, 1448, 34, 16, 0), frame(2000, 0)));
            h.backend.inject(concat(header(NEEDS_CSUM | NetAbi.HDR_F_DATA_VALID, 0, 0, 0, 34, 6, 0), f));
            h.backend.inject(concat(header(NEEDS_CSUM, 0, 0, 0, 300, 6, 0), frame(301, 0))); // field outside the frame
            h.backend.inject(concat(header(NetAbi.HDR_F_DATA_VALID, 0, 0, 0, 0, 0, 0), frame(80, 1)));
            List<Used> used = awaitUsed(h.rx, 2);
            Delivered d = reassemble(used, 0);
            assertThat(d.header()).isEqualTo(header(0, 0, 0, 0, 34, 6, 1));
            // what the receiver checks: the segment and the pseudo-header (the sum the field held) add up to 0xffff
            assertThat(ones(d.frame(), 34, 0x1234)).as("checksum over the segment").isEqualTo(0xffff);
            assertThat(Arrays.copyOf(d.frame(), 40)).isEqualTo(Arrays.copyOf(f, 40));
            assertThat(Arrays.copyOfRange(d.frame(), 42, 301)).isEqualTo(Arrays.copyOfRange(f, 42, 301));
            Delivered valid = reassemble(used, 1);
            assertThat(valid.header()[0]).as("DATA_VALID needs GUEST_CSUM").isZero();
            assertThat(valid.frame()).isEqualTo(frame(80, 1));
            assertThat(h.net.statistics().rxDropped()).isEqualTo(2);
        }
    }

    @Test
    void aCompletedChecksumThatFoldsToZeroIsSentAsAllOnesAsUdpNeeds() throws Exception {
        try (NetHarness h = new NetHarness(true, VirtioNet.MRG_RXBUF).activate()) {
            h.postRx(1, 2048);
            // from 34 all zero but the field, whose pseudo-header sum 0xffff makes the sum 0xffff: checksum 0
            byte[] f = Arrays.copyOf(frame(60, 5), 60);
            Arrays.fill(f, 34, 60, (byte) 0);
            f[40] = (byte) 0xff;
            f[41] = (byte) 0xff;
            h.backend.inject(concat(header(NEEDS_CSUM, 0, 0, 0, 34, 6, 0), f));
            Delivered d = reassemble(awaitUsed(h.rx, 1), 0);
            assertThat(Arrays.copyOfRange(d.frame(), 40, 42)).as("0 is \"no checksum\" to UDP")
                    .containsExactly((byte) 0xff, (byte) 0xff);
        }
    }

    /** The ones'-complement sum of {@code data} from {@code from} (16-bit big-endian words) and {@code plus}. */
    private static int ones(byte[] data, int from, int plus) {
        long sum = plus;
        for (int i = from; i < data.length; i += 2) {
            int hi = data[i] & 0xff;
            int lo = i + 1 < data.length ? data[i + 1] & 0xff : 0;
            sum += hi << 8 | lo;
        }
        while ((sum >>> 16) != 0) {
            sum = (sum & 0xffff) + (sum >>> 16);
        }
        return (int) sum;
    }

    @Test
    void aBrokenQueueAsksForAReset() throws Exception {
        try (NetHarness h = new NetHarness(false, 0).activate()) {
            h.tx.setAvailIdx(h.tx.availIdx() + 1000);
            h.context.kick(VirtioNet.TX_QUEUE);
            NetHarness.await("needs reset", () -> !h.context.resets().isEmpty());
            assertThat(h.context.resets()).hasSize(1);
        }
    }

    @Test
    void quiescedItMovesNothingUntilResumed() throws Exception {
        try (NetHarness h = new NetHarness(false, 0).activate()) {
            h.net.quiesce();
            h.send(plainHeader(), frame(60, 0));
            assertThat(h.tx.queue().nextAvail()).isZero();
            h.net.resume();
            assertThat(h.backend.awaitSent(WAIT)).isEqualTo(frame(60, 0));
        }
    }

    @Test
    void aResetDropsTheHeldFrameAndAnActivationServesAgain() throws Exception {
        try (NetHarness h = new NetHarness(false, 0).activate()) {
            h.backend.inject(frame(70, 1));
            NetHarness.await("held", () -> h.backend.waiting() == 0);
            h.net.reset();
            assertThat(h.context.recordingThreads().alive()).isEmpty();
            h.rx.queue().reset();
            h.rx.configure(h.rx.queue());
            h.net.activate(h.context);
            h.postRx(1, 2048);
            h.backend.inject(frame(80, 2));
            Used u = awaitUsed(h.rx, 1).get(0);
            assertThat(Arrays.copyOfRange(u.written(), 12, u.length())).isEqualTo(frame(80, 2));
        }
    }
}
