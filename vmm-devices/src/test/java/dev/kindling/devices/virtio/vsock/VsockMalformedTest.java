package dev.kindling.devices.virtio.vsock;

import static dev.kindling.devices.virtio.vsock.VsockGuest.op;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_CREDIT_UPDATE;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_REQUEST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RESPONSE;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RW;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_SHUTDOWN;
import static dev.kindling.devices.virtio.vsock.VsockHeader.SHUTDOWN_SEND;
import static dev.kindling.devices.virtio.vsock.VsockHeader.TYPE_SEQPACKET;
import static dev.kindling.devices.virtio.vsock.VsockHeader.TYPE_STREAM;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.devices.virtio.vsock.VsockGuest.Packet;
import dev.kindling.testing.Fuzz;
import dev.kindling.testing.Gen;
import dev.kindling.testing.HostResources;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/** Malformed packets from the guest: a RST where there is a connection or a sender to answer, else a drop; never a failure. */
class VsockMalformedTest extends VsockTestBase {
    private static final long CID = VsockGuest.CID;
    private static final long HOST = VirtioVsock.HOST_CID;

    /** An open connection gets {@code packet}; it must be reset, the host end see end of stream, and the device go on. */
    private void resetsTheConnection(Consumer<VsockGuest> packet) {
        start(false);
        listen(1234);
        guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        packet.accept(guest);
        guest.await(op(OP_RST, 5000), "RST");
        assertThat(h.read(true)).isEmpty();
        assertThat(vsock.connections()).isZero();
        goesOn();
    }

    /** With no connection, {@code packet} gets a RST back. */
    private void isAnsweredWithRst(Consumer<VsockGuest> packet) {
        start(false);
        packet.accept(guest);
        guest.await(op(OP_RST, 5000), "RST");
        goesOn();
    }

    /** {@code packet} is dropped: no answer at all. */
    private void isDropped(Consumer<VsockGuest> packet) {
        start(false);
        packet.accept(guest);
        // a probe the device answers with a RST: answers come in order, so any to the packet came first
        guest.send(OP_REQUEST, 7777, 99, 0, BUF, 0, new byte[0]);
        guest.await(op(OP_RST, 7777), "RST for the probe");
        assertThat(guest.inbox).isEmpty();
        goesOn();
    }

    private void goesOn() {
        listen(4321);
        guestConnect(6000, 4321);
        assertThat(guest.context.resets()).isEmpty();
        assertThat(guest.context.fatals()).isEmpty();
    }

    @Test
    void aLenPastTheChainResets() {
        resetsTheConnection(g -> g.sendRaw(CID, HOST, 5000, 1234, 200, TYPE_STREAM, OP_RW, 0, BUF, 0, new byte[100]));
    }

    @Test
    void aWrongSourceCidResets() {
        resetsTheConnection(g -> g.sendRaw(CID + 1, HOST, 5000, 1234, 0, TYPE_STREAM, OP_CREDIT_UPDATE, 0, BUF, 0, new byte[0]));
    }

    @Test
    void aWrongDestinationCidResets() {
        resetsTheConnection(g -> g.sendRaw(CID, 1, 5000, 1234, 0, TYPE_STREAM, OP_CREDIT_UPDATE, 0, BUF, 0, new byte[0]));
    }

    @Test
    void anUnknownOpResets() {
        resetsTheConnection(g -> g.sendRaw(CID, HOST, 5000, 1234, 0, TYPE_STREAM, 8, 0, BUF, 0, new byte[0]));
    }

    @Test
    void opZeroResets() {
        resetsTheConnection(g -> g.sendRaw(CID, HOST, 5000, 1234, 0, TYPE_STREAM, 0, 0, BUF, 0, new byte[0]));
    }

    @Test
    void aSeqpacketOnAStreamResets() {
        resetsTheConnection(g -> g.sendRaw(CID, HOST, 5000, 1234, 0, TYPE_SEQPACKET, OP_CREDIT_UPDATE, 0, BUF, 0, new byte[0]));
    }

    @Test
    void aPayloadOnAControlPacketResets() {
        resetsTheConnection(g -> g.sendRaw(CID, HOST, 5000, 1234, 10, TYPE_STREAM, OP_CREDIT_UPDATE, 0, BUF, 0, new byte[10]));
    }

    @Test
    void aSecondRequestResets() {
        resetsTheConnection(g -> g.send(OP_REQUEST, 5000, 1234, 0, BUF, 0, new byte[0]));
    }

    @Test
    void aResponseOnAnOpenConnectionResets() {
        resetsTheConnection(g -> g.send(OP_RESPONSE, 5000, 1234, 0, BUF, 0, new byte[0]));
    }

    @Test
    void dataAfterShutdownSendResets() {
        resetsTheConnection(g -> {
            g.send(OP_SHUTDOWN, 5000, 1234, SHUTDOWN_SEND, BUF, 0, new byte[0]);
            g.send(OP_RW, 5000, 1234, 0, BUF, 0, new byte[10]);
        });
    }

    @Test
    void aTxChainWithAWritableBufferResets() {
        resetsTheConnection(g -> {
            long at = g.spareArea();
            VsockHeader.write(g.memory.slice(at, VsockHeader.SIZE), CID, HOST, 5000, 1234, 0, TYPE_STREAM, OP_CREDIT_UPDATE,
                    0, BUF, 0);
            g.sendChain(new long[][] {{at, VsockHeader.SIZE, 0}, {at + 64, 64, Virtqueue.DESC_F_WRITE}});
        });
    }

    @Test
    void aHeaderSplitOverTwoDescriptorsIsRead() {
        start(false);
        listen(1234);
        long at = guest.spareArea();
        VsockHeader.write(guest.memory.slice(at, VsockHeader.SIZE), CID, HOST, 5000, 1234, 0, TYPE_STREAM, OP_REQUEST, 0, BUF, 0);
        guest.memory.write(at + 128, guest.memory.read(at + 20, VsockHeader.SIZE - 20));
        guest.sendChain(new long[][] {{at, 20, 0}, {at + 128, VsockHeader.SIZE - 20, 0}});
        guest.await(op(OP_RESPONSE, 5000), "RESPONSE");
    }

    @Test
    void dataForNoConnectionGetsARst() {
        isAnsweredWithRst(g -> g.send(OP_RW, 5000, 1234, 0, BUF, 0, new byte[10]));
    }

    @Test
    void aResponseForNoRequestGetsARst() {
        isAnsweredWithRst(g -> g.send(OP_RESPONSE, 5000, 1234, 0, BUF, 0, new byte[0]));
    }

    @Test
    void anUnknownTypeWithoutAConnectionGetsARst() {
        isAnsweredWithRst(g -> g.sendRaw(CID, HOST, 5000, 1234, 0, TYPE_SEQPACKET, OP_REQUEST, 0, BUF, 0, new byte[0]));
    }

    @Test
    void aRequestForAnotherCidIsRefusedFromThatCid() {
        start(false);
        listen(1234);
        guest.sendRaw(CID, 5, 5000, 1234, 0, TYPE_STREAM, OP_REQUEST, 0, BUF, 0, new byte[0]);
        Packet rst = guest.await(op(OP_RST, 5000), "RST");
        assertThat(rst.srcCid()).isEqualTo(5);
        assertThat(rst.srcPort()).isEqualTo(1234);
        assertThat(vsock.connections()).isZero();
        goesOn();
    }

    @Test
    void aRstForNoConnectionIsDropped() {
        isDropped(g -> g.send(OP_RST, 5000, 1234, 0, BUF, 0, new byte[0]));
    }

    @Test
    void aChainShorterThanAHeaderIsDropped() {
        isDropped(g -> g.sendChain(new long[][] {{g.spareArea(), 20, 0}}));
    }

    @Test
    void rxChainsOfTheWrongShapeAreReturnedEmptyAndTheNextServes() {
        vsock = new VirtioVsock("vsock0", VsockGuest.CID, host);
        guest = new VsockGuest(false, false);
        vsock.activate(guest.context);
        listen(1234);
        long at = guest.spareArea();
        guest.postRxChain(new long[][] {{at, 64, 0}, {at + 64, 4096, Virtqueue.DESC_F_WRITE}}); // a readable part
        guest.postRxChain(new long[][] {{at + 8192, 20, Virtqueue.DESC_F_WRITE}}); // shorter than a header
        guest.postAllRx();
        guestConnect(5000, 1234);
        assertThat(guest.rawRxUsed).containsEntry(128, 0).containsEntry(130, 0);
        assertThat(guest.context.resets()).isEmpty();
    }

    @Test
    void brokenRingsNeedAResetAndCloseEveryConnection() {
        start(false);
        listen(1234);
        guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        guest.tx.setAvailIdx(guest.tx.availIdx() + 1000);
        guest.context.kick(VirtioVsock.TX);
        assertThat(h.read(true)).isEmpty();
        long end = System.nanoTime() + VsockGuest.WAIT.toNanos();
        while (guest.context.resets().isEmpty() && System.nanoTime() < end) {
            VsockGuest.sleep();
        }
        assertThat(guest.context.resets()).hasSize(1);
        assertThat(vsock.connections()).isZero();
    }

    @Test
    void randomTxPacketsGetRstsOrDropsAndTheDeviceGoesOn() {
        start(false);
        listen(1234);
        guestConnect(5000, 1234);
        int[] ops = {0, OP_REQUEST, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, 7, 8, 0xffff};
        Fuzz.check("vsock tx packets", 300, (Gen gen) -> {
            long srcCid = gen.oneIn(4) ? gen.anyLong() : CID;
            long dstCid = gen.oneIn(4) ? gen.anyLong() : HOST;
            int srcPort = gen.oneIn(3) ? gen.anyInt() : gen.pickInt(5000, 5001, 5002);
            int dstPort = gen.oneIn(3) ? gen.anyInt() : gen.pickInt(1234, 99);
            byte[] payload = gen.bytes(0, gen.oneIn(8) ? 65536 : 300);
            int len = gen.oneIn(4) ? gen.anyInt() : payload.length;
            int type = gen.oneIn(5) ? gen.between(0, 3) : TYPE_STREAM;
            int op = ops[gen.between(0, ops.length - 1)];
            guest.sendRaw(srcCid, dstCid, srcPort, dstPort, len, type, op, gen.anyInt(), gen.anyInt(), gen.anyInt(), payload);
            guest.awaitTxReturned();
            guest.inbox.clear();
            assertThat(guest.context.fatals()).isEmpty();
            assertThat(guest.context.resets()).isEmpty();
        });
        goesOn();
    }

    @Test
    void manyActivationsLeaveNoDescriptorOrThread() throws Exception {
        // warm up the classes and the JVM's own threads first
        cycle();
        HostResources before = HostResources.now();
        for (int i = 0; i < 30; i++) {
            cycle();
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    private void cycle() throws Exception {
        try (VsockGuest g = new VsockGuest(false); HostEnd a = new HostEnd(); HostEnd b = new HostEnd()) {
            VirtioVsock v = new VirtioVsock("vsock0", VsockGuest.CID, (p, gp) -> p == 1234 ? a.device : null);
            try {
                v.activate(g.context);
                g.send(OP_REQUEST, 5000, 1234, 0, BUF, 0, new byte[0]);
                g.await(op(OP_RESPONSE, 5000), "RESPONSE");
                g.send(OP_RW, 5000, 1234, 0, BUF, 0, new byte[10]);
                assertThat(a.readFully(10)).hasSize(10);
                Outcome o = new Outcome();
                v.connect(7000, b.device, o);
                g.await(op(OP_REQUEST, 7000), "REQUEST");
                v.reset();
                v.activate(g.context); // again, as after a driver reset (the connections are gone)
            } finally {
                v.close();
            }
            assertThat(v.connections()).isZero();
            assertThat(a.read(true)).isEmpty();
            assertThat(g.context.recordingThreads().alive()).isEmpty();
        }
    }
}
