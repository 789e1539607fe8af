package dev.kindling.devices.virtio.vsock;

import static dev.kindling.devices.virtio.vsock.VsockGuest.op;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_CREDIT_REQUEST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_CREDIT_UPDATE;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_REQUEST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RESPONSE;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RW;
import static dev.kindling.devices.virtio.vsock.VsockHeader.SHUTDOWN_RCV;
import static dev.kindling.devices.virtio.vsock.VsockHeader.SHUTDOWN_SEND;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.vsock.VsockGuest.Packet;
import dev.kindling.sys.Errno;
import dev.kindling.sys.Libc;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;

/** Credit both ways, SHUTDOWN and RST, and the host or guest going away mid-transfer. */
class VsockFlowTest extends VsockTestBase {

    @Test
    void aHostThatStopsReadingStopsTheGuestWithinItsCreditAndAnOverrunIsReset() throws Exception {
        start(false);
        listen(1234);
        GuestStream s = guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        byte[] chunk = new byte[VsockGuest.TX_PAYLOAD];
        new Random(4).nextBytes(chunk);
        long sent = 0;
        // write while the device gives credit: the socket fills, then the device's buffer
        for (int i = 0; i < 10_000; i++) {
            s.drain();
            long n = Math.min(s.credit(), chunk.length);
            if (n == 0) {
                // no credit: once everything sent is served, the device's answer to a credit request
                // says whether it took more from the buffer since
                guest.awaitTxReturned();
                guest.send(OP_CREDIT_REQUEST, 5000, 1234, 0, BUF, s.fwdCnt, new byte[0]);
                s.onPacket(guest.await(op(OP_CREDIT_UPDATE, 5000), "CREDIT_UPDATE"));
                s.drain();
                if (s.credit() == 0) {
                    break;
                }
                continue;
            }
            s.guest.send(OP_RW, 5000, 1234, 0, BUF, s.fwdCnt, Arrays.copyOf(chunk, (int) n));
            s.txCnt += (int) n;
            sent += n;
        }
        assertThat(s.credit()).isZero();
        assertThat(sent).as("bytes the guest could send: the socket's buffer and the device's")
                .isGreaterThanOrEqualTo(VirtioVsock.BUF_ALLOC).isLessThan(VirtioVsock.BUF_ALLOC + (16L << 20));
        assertThat(vsock.connections()).isOne();
        // one byte past the credit: reset, and the host end sees the end of the stream after what was delivered
        s.guest.send(OP_RW, 5000, 1234, 0, BUF, s.fwdCnt, new byte[1]);
        guest.await(op(OP_RST, 5000), "RST for data past the credit");
        long got = 0;
        for (byte[] b = h.read(true); b != null && b.length > 0; b = h.read(true)) {
            got += b.length;
        }
        assertThat(got).isLessThanOrEqualTo(sent);
        assertThat(vsock.connections()).isZero();
    }

    @Test
    void aGuestThatNeverReadsStopsTheHostWriterThenEverythingArrives() throws Exception {
        start(false);
        listen(1234);
        GuestStream s = guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        Libc.setNonBlocking(h.fd, true);
        s.reading = false;
        byte[] chunk = new byte[16 * 1024];
        new Random(5).nextBytes(chunk);
        CRC32 crc = new CRC32();
        long written = 0;
        boolean blocked = false;
        for (int i = 0; i < 10_000 && !blocked; i++) {
            long r = h.trySend(chunk);
            if (r == -Errno.EAGAIN) {
                // the device may still be moving bytes into the guest's credit: blocked once that is full
                s.drain();
                blocked = s.held == s.bufAlloc && h.trySend(chunk) == -Errno.EAGAIN;
                if (!blocked) {
                    VsockGuest.sleep();
                }
                continue;
            }
            assertThat(r).isPositive();
            crc.update(chunk, 0, (int) r);
            written += r;
        }
        assertThat(blocked).as("the host writer is blocked").isTrue();
        assertThat(s.held).as("what the guest got: its credit").isEqualTo(s.bufAlloc);
        assertThat(s.overruns).isZero();
        assertThat(written).isLessThan(s.bufAlloc + (16L << 20));
        // the guest reads: the rest flows
        s.resumeReading();
        long total = written;
        s.until(() -> s.received == total, "all written bytes received");
        assertThat(s.crc.getValue()).isEqualTo(crc.getValue());
    }

    @Test
    void aCreditRequestIsAnswered() {
        start(false);
        listen(1234);
        guestConnect(5000, 1234);
        guest.send(OP_CREDIT_REQUEST, 5000, 1234, 0, BUF, 0, new byte[0]);
        Packet p = guest.await(op(OP_CREDIT_UPDATE, 5000), "CREDIT_UPDATE");
        assertThat(p.bufAlloc()).isEqualTo(VirtioVsock.BUF_ALLOC);
        assertThat(p.fwdCnt()).isZero();
    }

    @Test
    void theHostClosingIsAShutdownThenTheGuestsCloseIsAnsweredWithRst() throws Exception {
        start(false);
        listen(1234);
        GuestStream s = guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        s.keep = true;
        assertThat(h.write("bye".getBytes(StandardCharsets.UTF_8))).isTrue();
        h.fd.close();
        s.until(() -> (s.peerShutdown & SHUTDOWN_SEND) != 0, "SHUTDOWN(SEND)");
        assertThat(s.kept.toString(StandardCharsets.UTF_8)).isEqualTo("bye");
        s.shutdown(SHUTDOWN_RCV | SHUTDOWN_SEND);
        guest.await(op(OP_RST, 5000), "RST after the guest's full shutdown");
        assertThat(vsock.connections()).isZero();
    }

    @Test
    void theGuestShuttingSendIsEndOfStreamForTheHostWhichStillWrites() throws Exception {
        start(false);
        listen(1234);
        GuestStream s = guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        s.write("last".getBytes(StandardCharsets.UTF_8));
        s.shutdown(SHUTDOWN_SEND);
        assertThat(new String(h.readFully(4), StandardCharsets.UTF_8)).isEqualTo("last");
        assertThat(h.read(true)).isEmpty();
        s.keep = true;
        assertThat(h.write("reply".getBytes(StandardCharsets.UTF_8))).isTrue();
        s.until(() -> s.received == 5, "the reply");
        assertThat(s.kept.toString(StandardCharsets.UTF_8)).isEqualTo("reply");
        // the host closes too: both directions ended, so a full SHUTDOWN and the guest's RST ends it
        h.fd.close();
        s.until(() -> s.peerShutdown == (SHUTDOWN_RCV | SHUTDOWN_SEND), "a full SHUTDOWN");
        guest.send(OP_RST, 5000, 1234, 0, BUF, s.fwdCnt, new byte[0]);
        s.until(() -> vsock.connections() == 0, "the connection dropped");
    }

    @Test
    void aGuestThatNeverAnswersTheFullShutdownIsReset() throws Exception {
        start(false, new VirtioVsock("vsock0", VsockGuest.CID, host, VirtioVsock.CONNECT_TIMEOUT, Duration.ofMillis(200)));
        listen(1234);
        GuestStream s = guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        s.shutdown(SHUTDOWN_SEND);
        h.fd.close();
        s.until(() -> s.peerShutdown == (SHUTDOWN_RCV | SHUTDOWN_SEND), "a full SHUTDOWN");
        s.until(() -> s.reset, "a RST after the close timeout");
        assertThat(vsock.connections()).isZero();
    }

    @Test
    void aHostThatClosesFullyAfterItsEndOfStreamIsNoticedWhileTheGuestIsIdle() throws Exception {
        start(false, new VirtioVsock("vsock0", VsockGuest.CID, host, VirtioVsock.CONNECT_TIMEOUT, Duration.ofMillis(200)));
        listen(1234);
        GuestStream s = guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        Libc.shutdown(h.fd, Libc.SHUT_WR);
        s.until(() -> s.peerShutdown == SHUTDOWN_SEND, "SHUTDOWN(SEND) for the host's half-close");
        // half-closed: the guest still writes to the host
        s.write("still".getBytes(StandardCharsets.UTF_8));
        assertThat(new String(h.readFully(5), StandardCharsets.UTF_8)).isEqualTo("still");
        assertThat(vsock.connections()).isOne();
        h.fd.close();
        s.until(() -> s.peerShutdown == (SHUTDOWN_RCV | SHUTDOWN_SEND), "a full SHUTDOWN for the host's close");
        s.until(() -> s.reset, "a RST after the close timeout");
        assertThat(vsock.connections()).isZero();
    }

    @Test
    void aHostStreamMadeBlockingBehindTheDevicesBackDoesNotBlockTheDevice() throws Exception {
        start(false);
        listen(1234);
        GuestStream s = guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        Libc.setNonBlocking(h.device, false);
        byte[] data = new byte[VirtioVsock.BUF_ALLOC];
        new Random(7).nextBytes(data);
        s.write(data);
        // more than the socket takes: the device buffers the rest and still serves other connections
        guestConnect(5001, 1234);
        assertThat(h.readFully(data.length)).isEqualTo(data);
    }

    @Test
    void theGuestShuttingReceiveIsABrokenPipeForTheHostWriter() throws Exception {
        start(false);
        listen(1234);
        GuestStream s = guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        s.shutdown(SHUTDOWN_RCV);
        long end = System.nanoTime() + VsockGuest.WAIT.toNanos();
        long r = 0;
        // until the device has the SHUTDOWN, the socket may also fill up (EAGAIN): then wait
        while (System.nanoTime() < end && (r = h.trySend(new byte[1000])) != -Errno.EPIPE) {
            s.drain();
            if (r < 0) {
                VsockGuest.sleep();
            }
        }
        assertThat(r).isEqualTo(-Errno.EPIPE);
    }

    @Test
    void aGuestRstIsEndOfStreamForTheHost() throws Exception {
        start(false);
        listen(1234);
        guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        guest.send(OP_RST, 5000, 1234, 0, BUF, 0, new byte[0]);
        assertThat(h.read(true)).isEmpty();
        assertThat(vsock.connections()).isZero();
    }

    @Test
    void theHostClosingMidTransferEndsTheStreamAfterWhatItWrote() throws Exception {
        start(false);
        listen(1234);
        GuestStream s = guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        byte[] data = new byte[1 << 20];
        new Random(6).nextBytes(data);
        CompletableFuture<Boolean> wrote = CompletableFuture.supplyAsync(() -> {
            boolean ok = h.write(data);
            h.fd.close();
            return ok;
        });
        s.until(() -> (s.peerShutdown & SHUTDOWN_SEND) != 0, "SHUTDOWN(SEND)");
        assertThat(wrote.get(10, TimeUnit.SECONDS)).isTrue();
        CRC32 crc = new CRC32();
        crc.update(data);
        assertThat(s.received).isEqualTo(data.length);
        assertThat(s.crc.getValue()).isEqualTo(crc.getValue());
    }

    @Test
    void aHostPeerGoneWhileTheGuestSendsIsARst() throws Exception {
        start(false);
        listen(1234);
        GuestStream s = guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        s.write(new byte[1000]);
        h.fd.close();
        long end = System.nanoTime() + VsockGuest.WAIT.toNanos();
        while (!s.reset && System.nanoTime() < end) {
            s.drain();
            if (s.credit() > 0 && (s.peerShutdown & SHUTDOWN_RCV) == 0) {
                guest.send(OP_RW, 5000, 1234, 0, BUF, s.fwdCnt, new byte[100]);
                s.txCnt += 100;
            }
            VsockGuest.sleep();
        }
        assertThat(s.reset).as("RST after the broken pipe").isTrue();
        assertThat(vsock.connections()).isZero();
        // and the device goes on
        listen(1235);
        guestConnect(5001, 1235);
    }

    @Test
    void aHostConnectionIsRefusedBeyond1023AndGuestRequestsAreReset() throws Exception {
        start(false);
        listen(1234);
        for (int i = 0; i < VirtioVsock.MAX_CONNECTIONS; i++) {
            guest.send(OP_REQUEST, 10_000 + i, 1234, 0, BUF, 0, new byte[0]);
        }
        for (int i = 0; i < VirtioVsock.MAX_CONNECTIONS; i++) {
            int port = 10_000 + i;
            guest.await(op(OP_RESPONSE, port), "RESPONSE " + i);
        }
        assertThat(vsock.connections()).isEqualTo(VirtioVsock.MAX_CONNECTIONS);
        guest.send(OP_REQUEST, 9999, 1234, 0, BUF, 0, new byte[0]);
        guest.await(op(OP_RST, 9999), "RST for the 1024th");
        HostEnd end = new HostEnd();
        closing.add(end);
        Outcome o = new Outcome();
        vsock.connect(7000, end.device, o);
        assertThat(o.refused.get(10, TimeUnit.SECONDS)).contains("1023");
        // one goes, and a new one fits
        guest.send(OP_RST, 10_000, 1234, 0, BUF, 0, new byte[0]);
        guest.send(OP_REQUEST, 9999, 1234, 0, BUF, 0, new byte[0]);
        guest.await(op(OP_RESPONSE, 9999), "RESPONSE once one closed");
    }

    @Test
    void aTransportResetDropsEveryConnectionAndTellsTheDriver() throws Exception {
        start(false);
        listen(1234);
        guestConnect(5000, 1234);
        guestConnect(5001, 1234);
        HostConnect c = hostConnect(7000);
        assertThat(vsock.connections()).isEqualTo(3);
        vsock.resetTransport();
        long end = System.nanoTime() + VsockGuest.WAIT.toNanos();
        while (guest.events.isEmpty() && System.nanoTime() < end) {
            guest.pump();
            VsockGuest.sleep();
        }
        assertThat(guest.events).containsExactly(VsockHeader.EVENT_TRANSPORT_RESET);
        assertThat(guest.context.interrupts(VirtioVsock.EVENT)).isPositive();
        assertThat(accepted(1234, 0).read(true)).isEmpty();
        assertThat(accepted(1234, 1).read(true)).isEmpty();
        assertThat(c.outcome().refused.get(10, TimeUnit.SECONDS)).contains("reset");
        assertThat(vsock.connections()).isZero();
        // the device serves new connections after
        guestConnect(5002, 1234);
    }
}
