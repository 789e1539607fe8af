package dev.kindling.devices.virtio.vsock;

import static dev.kindling.devices.virtio.vsock.VsockGuest.op;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_REQUEST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RESPONSE;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RW;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_SHUTDOWN;
import static dev.kindling.devices.virtio.vsock.VsockHeader.SHUTDOWN_RCV;
import static dev.kindling.devices.virtio.vsock.VsockHeader.SHUTDOWN_SEND;
import static dev.kindling.devices.virtio.vsock.UdsClients.readToClose;
import static dev.kindling.devices.virtio.vsock.UdsClients.send;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.devices.virtio.vsock.VsockGuest.Packet;
import dev.kindling.testing.HostResources;
import java.io.IOException;
import java.net.ConnectException;
import java.net.SocketTimeoutException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import java.util.zip.CRC32;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The host side through the real device, with the test thread as the guest's driver and sockets
 * (a {@link VsockGuest}): the Java API, Firecracker's Unix-socket protocol byte for byte, and the
 * host-side faults. Nothing stays open once all is closed.
 */
class VsockEndToEndTest {
    private static final int BUF = VirtioVsock.BUF_ALLOC;

    private HostResources before;
    private Path dir;
    private Path uds;
    private Vsock vsock;
    private VsockGuest guest;
    private final List<Thread> threads = new ArrayList<>();

    @BeforeEach
    void setUp() throws Exception {
        dir = Files.createTempDirectory(Path.of("/tmp"), "vske");
        // a first round loads the classes and opens what the JDK keeps for Unix-domain channels
        start();
        try (SocketChannel c = dial()) {
            send(c, "x\n");
            readToClose(c);
        }
        stop();
        before = HostResources.now();
        start();
    }

    private void start() throws IOException {
        uds = dir.resolve("v.sock");
        vsock = Vsock.create("vm", VsockGuest.CID, uds, Duration.ofMillis(500));
        guest = new VsockGuest(false);
        vsock.device().activate(guest.context);
    }

    private void stop() throws InterruptedException {
        vsock.close();
        vsock.device().close();
        assertThat(guest.context.fatals()).isEmpty();
        guest.close();
        for (Thread t : threads) {
            t.join(10_000);
        }
        threads.clear();
    }

    @AfterEach
    void tearDown() throws Exception {
        stop();
        assertThat(Files.exists(uds)).as("the socket file removed").isFalse();
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    private <T> CompletableFuture<T> async(Callable<T> body) {
        CompletableFuture<T> f = new CompletableFuture<>();
        Thread t = Thread.ofPlatform().daemon().name("test-host").unstarted(() -> {
            try {
                f.complete(body.call());
            } catch (Throwable e) {
                f.completeExceptionally(e);
            }
        });
        threads.add(t);
        t.start();
        return f;
    }

    private static <T> T await(CompletableFuture<T> f) throws Exception {
        return f.get(20, TimeUnit.SECONDS);
    }

    /** The guest answers the device's next REQUEST to {@code guestPort}. */
    private GuestStream accept(int guestPort) {
        Packet req = guest.await(op(OP_REQUEST, guestPort), "REQUEST");
        guest.send(OP_RESPONSE, guestPort, req.srcPort(), 0, BUF, 0, new byte[0]);
        GuestStream s = new GuestStream(guest, guestPort, req.srcPort());
        s.onPacket(req);
        s.keep = true;
        return s;
    }

    private GuestStream guestConnect(int guestPort, int port) {
        guest.send(OP_REQUEST, guestPort, port, 0, BUF, 0, new byte[0]);
        Packet r = guest.await(op(OP_RESPONSE, guestPort), "RESPONSE");
        GuestStream s = new GuestStream(guest, guestPort, port);
        s.onPacket(r);
        s.keep = true;
        return s;
    }

    private SocketChannel dial() throws IOException {
        return UdsClients.dial(uds);
    }

    private static byte[] readN(SocketChannel c, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        while (b.hasRemaining()) {
            if (c.read(b) < 0) {
                throw new IOException("end of stream after " + b.position() + " of " + n + " bytes");
            }
        }
        return b.array();
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void theHostConnectsAndBytesFlowBothWays() throws Exception {
        CompletableFuture<VsockConnection> c = async(() -> vsock.connect(52));
        GuestStream s = accept(52);
        VsockConnection conn = await(c);
        assertThat(conn.localPort()).isEqualTo(s.hostPort).isGreaterThanOrEqualTo(VirtioVsock.FIRST_HOST_PORT);
        assertThat(conn.peerPort()).isEqualTo(52);
        conn.outputStream().write(bytes("hello"));
        s.until(() -> s.received == 5, "hello received");
        assertThat(s.kept.toString(StandardCharsets.UTF_8)).isEqualTo("hello");
        s.write(bytes("world"));
        assertThat(conn.inputStream().readNBytes(5)).isEqualTo(bytes("world"));
        s.shutdown(SHUTDOWN_SEND);
        assertThat(conn.inputStream().read()).as("the guest's shutdown is end of stream").isEqualTo(-1);
        conn.close();
        s.until(() -> s.peerShutdown == (SHUTDOWN_RCV | SHUTDOWN_SEND) || s.reset, "the host's close seen");
    }

    /**
     * 64-byte round trips through the device, timed and printed (not asserted): what the device adds
     * to a guest round trip. The test's driver polls every millisecond, so that is the resolution.
     */
    @Test
    void roundTripsOfSixtyFourBytesAreTimed() throws Exception {
        CompletableFuture<VsockConnection> c = async(() -> vsock.connect(56));
        GuestStream s = accept(56);
        try (VsockConnection conn = await(c)) {
            byte[] ping = new byte[64];
            int rounds = 100;
            long[] micros = new long[rounds];
            for (int i = 0; i < rounds; i++) {
                ping[0] = (byte) i;
                long start = System.nanoTime();
                conn.outputStream().write(ping);
                long want = s.received + ping.length;
                s.until(() -> s.received >= want, "ping " + i);
                s.write(ping);
                assertThat(conn.inputStream().readNBytes(64)).isEqualTo(ping);
                micros[i] = (System.nanoTime() - start) / 1000;
            }
            Arrays.sort(micros);
            System.out.printf("vsock 64-byte round trip through the device, %d rounds: median %d us, 90%% %d us, max %d us%n",
                    rounds, micros[rounds / 2], micros[rounds * 9 / 10], micros[rounds - 1]);
        }
    }

    @Test
    void aRefusedConnectIsAConnectException() throws Exception {
        CompletableFuture<VsockConnection> c = async(() -> vsock.connect(53));
        Packet req = guest.await(op(OP_REQUEST, 53), "REQUEST");
        guest.send(OP_RST, 53, req.srcPort(), 0, 0, 0, new byte[0]);
        assertThatThrownBy(() -> await(c)).cause().isInstanceOf(ConnectException.class).hasMessageContaining("53");
    }

    @Test
    void connectWithATimeoutTriesAgainUntilTheGuestListens() throws Exception {
        CompletableFuture<VsockConnection> c = async(() -> vsock.connect(54, Duration.ofSeconds(20)));
        for (int i = 0; i < 3; i++) {
            Packet req = guest.await(op(OP_REQUEST, 54), "REQUEST " + i);
            guest.send(OP_RST, 54, req.srcPort(), 0, 0, 0, new byte[0]);
        }
        GuestStream s = accept(54);
        VsockConnection conn = await(c);
        assertThat(conn.localPort()).isEqualTo(s.hostPort);
        conn.close();
    }

    @Test
    void connectWithATimeoutGivesUpNamingThePortAndTheWait() throws Exception {
        CompletableFuture<VsockConnection> c = async(() -> vsock.connect(55, Duration.ofMillis(400)));
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        int refused = 0;
        while (!c.isDone() && System.nanoTime() < end) {
            Optional<Packet> req = guest.poll(op(OP_REQUEST, 55), Duration.ofMillis(20));
            if (req.isPresent()) {
                guest.send(OP_RST, 55, req.get().srcPort(), 0, 0, 0, new byte[0]);
                refused++;
            }
        }
        assertThat(refused).as("attempts").isGreaterThan(1);
        assertThatThrownBy(() -> await(c)).cause().isInstanceOf(SocketTimeoutException.class)
                .hasMessageContaining("55").hasMessageContaining(" ms");
    }

    @Test
    void aListenerAcceptsTheGuestsConnections() throws Exception {
        try (VsockListener l = vsock.listen(1234)) {
            GuestStream s = guestConnect(5000, 1234);
            VsockConnection conn = l.accept(Duration.ofSeconds(10)).orElseThrow();
            assertThat(conn.localPort()).isEqualTo(1234);
            assertThat(conn.peerPort()).isEqualTo(5000);
            s.write(bytes("ping"));
            ByteBuffer got = ByteBuffer.allocate(4);
            while (got.hasRemaining()) {
                assertThat(conn.read(got)).isPositive();
            }
            assertThat(got.array()).isEqualTo(bytes("ping"));
            conn.write(ByteBuffer.wrap(bytes("pong")));
            s.until(() -> s.received == 4, "pong");
            assertThat(s.kept.toString(StandardCharsets.UTF_8)).isEqualTo("pong");
            conn.close();
        }
        guest.send(OP_REQUEST, 5001, 1234, 0, BUF, 0, new byte[0]);
        guest.await(op(OP_RST, 5001), "RST once the listener is closed");
    }

    @Test
    void theUnixSocketProtocolByteForByte() throws Exception {
        try (SocketChannel client = dial()) {
            send(client, "CONNECT 52\nearly");
            GuestStream s = accept(52);
            byte[] ok = ("OK " + Integer.toUnsignedString(s.hostPort) + "\n").getBytes(StandardCharsets.US_ASCII);
            assertThat(s.hostPort).isGreaterThanOrEqualTo(1 << 30);
            assertThat(readN(client, ok.length)).isEqualTo(ok);
            s.until(() -> s.received == 5, "the bytes sent after the line");
            assertThat(s.kept.toString(StandardCharsets.UTF_8)).as("nothing of the line, nothing lost").isEqualTo("early");
            s.write(bytes("from guest"));
            assertThat(readN(client, 10)).isEqualTo(bytes("from guest"));
        }
        try (SocketChannel lower = dial()) {
            send(lower, "connect 53\n");
            GuestStream s = accept(53);
            assertThat(new String(readN(lower, 14), StandardCharsets.US_ASCII))
                    .isEqualTo("OK " + Integer.toUnsignedString(s.hostPort) + "\n");
        }
        try (SocketChannel refused = dial()) {
            send(refused, "CONNECT 54\n");
            Packet req = guest.await(op(OP_REQUEST, 54), "REQUEST");
            guest.send(OP_RST, 54, req.srcPort(), 0, 0, 0, new byte[0]);
            assertThat(readToClose(refused)).as("refused: closed with no answer").isEmpty();
        }
        try (SocketChannel malformed = dial()) {
            send(malformed, "CONNECT fifty\n");
            assertThat(readToClose(malformed)).isEmpty();
        }
    }

    @Test
    void theGuestReachesAServerAtPathUnderscorePort() throws Exception {
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(Path.of(uds + "_5200")));
            CompletableFuture<SocketChannel> accepted = async(server::accept);
            GuestStream s = guestConnect(6000, 5200);
            try (SocketChannel host = await(accepted)) {
                s.write(bytes("up"));
                assertThat(readN(host, 2)).isEqualTo(bytes("up"));
                send(host, "down");
                s.until(() -> s.received == 4, "down");
                assertThat(s.kept.toString(StandardCharsets.UTF_8)).isEqualTo("down");
            }
            s.until(() -> s.peerShutdown != 0 || s.reset, "the host server's close seen");
        }
        guest.send(OP_REQUEST, 6001, 5201, 0, BUF, 0, new byte[0]);
        guest.await(op(OP_RST, 6001), "RST: nobody at <path>_5201");
    }

    @Test
    void manyClientsDialingBeforeTheGuestListensEachGetAnAnswer() throws Exception {
        List<SocketChannel> clients = new ArrayList<>();
        try {
            for (int i = 0; i < 64; i++) {
                SocketChannel c = dial();
                clients.add(c);
                send(c, "CONNECT " + (2000 + i) + "\n");
            }
            for (int i = 0; i < 64; i++) {
                Packet req = guest.await(k -> k.op() == OP_REQUEST, "REQUEST");
                guest.send(OP_RST, req.dstPort(), req.srcPort(), 0, 0, 0, new byte[0]);
            }
            for (SocketChannel c : clients) {
                assertThat(readToClose(c)).isEmpty();
            }
        } finally {
            for (SocketChannel c : clients) {
                c.close();
            }
        }
        CompletableFuture<VsockConnection> c = async(() -> vsock.connect(2100));
        accept(2100);
        await(c).close();
        assertThat(guest.context.fatals()).isEmpty();
    }

    @Test
    void aHostPeerGoneMidTransferIsSeenByTheGuestAndTheVmCarriesOn() throws Exception {
        GuestStream s;
        try (SocketChannel client = dial()) {
            send(client, "CONNECT 60\n");
            s = accept(60);
            readN(client, ("OK " + Integer.toUnsignedString(s.hostPort) + "\n").length());
            s.write(new byte[32 * 1024]);
        }
        byte[] more = new byte[16 * 1024];
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!s.reset && s.peerShutdown == 0 && System.nanoTime() < end) {
            s.drain();
            if (s.credit() >= more.length) {
                // the guest goes on sending (a guest that only learns of the close from the reply)
                guest.send(OP_RW, 60, s.hostPort, 0, BUF, s.fwdCnt, more);
                s.txCnt += more.length;
            }
            VsockGuest.sleep();
        }
        assertThat(s.reset || s.peerShutdown != 0).as("the guest sees the peer gone: " + s).isTrue();
        CompletableFuture<VsockConnection> c = async(() -> vsock.connect(61));
        accept(61);
        await(c).close();
    }

    @Test
    void theHostClosingMidTransferEndsABlockedWriter() throws Exception {
        CompletableFuture<VsockConnection> c = async(() -> vsock.connect(62));
        GuestStream s = accept(62);
        s.reading = false;
        s.keep = true;
        VsockConnection conn = await(c);
        byte[] chunk = new byte[64 * 1024];
        new Random(3).nextBytes(chunk);
        CompletableFuture<Long> writer = async(() -> {
            long n = 0;
            while (n < (64L << 20)) {
                conn.outputStream().write(chunk);
                n += chunk.length;
            }
            return n;
        });
        s.until(() -> s.held >= BUF, "the guest's buffer filled");
        assertThat(writer).as("a guest that does not read stops the writer").isNotDone();
        conn.close();
        assertThatThrownBy(() -> await(writer)).cause().isInstanceOf(AsynchronousCloseException.class);
        // what the host wrote before its close still arrives, then the close
        s.resumeReading();
        s.until(() -> s.peerShutdown != 0 || s.reset, "the host's close seen");
        assertThat(s.overruns).as("the device kept within the guest's credit").isZero();
        byte[] got = s.kept.toByteArray();
        assertThat((long) got.length).as("what arrived").isEqualTo(s.received).isGreaterThanOrEqualTo(BUF);
        for (int at = 0; at < got.length; at += chunk.length) {
            int n = Math.min(chunk.length, got.length - at);
            assertThat(Arrays.equals(got, at, at + n, chunk, 0, n)).as("bytes at " + at + " as written").isTrue();
        }
    }

    @Test
    void aHostServerThatWouldBlockGivesTheGuestARstNotAStall() throws Exception {
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(Path.of(uds + "_5300")), 1);
            int responses = 0, resets = 0;
            for (int i = 0; i < 10; i++) {
                int guestPort = 7000 + i;
                guest.send(OP_REQUEST, guestPort, 5300, 0, BUF, 0, new byte[0]);
                Packet r = guest.await(k -> k.dstPort() == guestPort && (k.op() == OP_RESPONSE || k.op() == OP_RST), "an answer");
                if (r.op() == OP_RST) {
                    resets++;
                } else {
                    responses++;
                }
            }
            assertThat(responses).as("within the server's backlog").isPositive();
            assertThat(resets).as("beyond the backlog, where a blocking connect would wait").isPositive();
        }
        CompletableFuture<VsockConnection> c = async(() -> vsock.connect(63));
        accept(63);
        await(c).close();
    }

    @Test
    void aGuestClosingAbruptlyIsEndOfStreamThenAWriteError() throws Exception {
        CompletableFuture<VsockConnection> c = async(() -> vsock.connect(64));
        GuestStream s = accept(64);
        VsockConnection conn = await(c);
        s.write(bytes("last"));
        guest.send(OP_RST, 64, s.hostPort, 0, 0, 0, new byte[0]);
        assertThat(conn.inputStream().readNBytes(8)).as("what came before the RST, then end of stream").isEqualTo(bytes("last"));
        assertThatThrownBy(() -> {
            for (int i = 0; i < 1000; i++) {
                conn.outputStream().write(new byte[4096]);
            }
        }).isInstanceOf(IOException.class);
        conn.close();
    }

    @Test
    void sixtyFourConnectionsAtOnce() throws Exception {
        CompletableFuture<List<VsockConnection>> opened = async(() -> {
            List<VsockConnection> all = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                all.add(vsock.connect(3000 + i));
            }
            return all;
        });
        List<GuestStream> streams = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
            streams.add(accept(3000 + i));
        }
        List<VsockConnection> conns = await(opened);
        assertThat(vsock.device().connections()).isEqualTo(64);
        for (int i = 0; i < 64; i++) {
            conns.get(i).outputStream().write(bytes("conn " + (3000 + i)));
        }
        for (int i = 0; i < 64; i++) {
            GuestStream s = streams.get(i);
            String want = "conn " + (3000 + i);
            s.until(() -> s.received == want.length(), want);
            assertThat(s.kept.toString(StandardCharsets.UTF_8)).isEqualTo(want);
            s.write(bytes("back " + i));
        }
        for (int i = 0; i < 64; i++) {
            assertThat(conns.get(i).inputStream().readNBytes(("back " + i).length())).isEqualTo(bytes("back " + i));
            conns.get(i).close();
        }
    }

    @Test
    void megabytesEachWayWithMatchingChecksums() throws Exception {
        int size = 8 << 20;
        byte[] up = new byte[size];
        byte[] down = new byte[size];
        new Random(11).nextBytes(up);
        new Random(12).nextBytes(down);
        CompletableFuture<VsockConnection> c = async(() -> vsock.connect(70));
        GuestStream s = accept(70);
        s.keep = false;
        VsockConnection conn = await(c);
        CompletableFuture<Long> writer = async(() -> {
            conn.outputStream().write(down);
            return (long) down.length;
        });
        CompletableFuture<byte[]> reader = async(() -> conn.inputStream().readNBytes(size));
        s.write(up);
        s.until(() -> s.received == size, "all of the host's bytes");
        CRC32 want = new CRC32();
        want.update(down);
        assertThat(s.crc.getValue()).isEqualTo(want.getValue());
        assertThat(await(writer)).isEqualTo(size);
        assertThat(await(reader)).isEqualTo(up);
        assertThat(s.overruns).isZero();
        conn.close();
    }

    @Test
    void aClientGoneWhileTheGuestAcknowledgesIsABrokenPipeTheGuestSees() throws Exception {
        Packet req;
        try (SocketChannel client = dial()) {
            send(client, "CONNECT 80\n");
            req = guest.await(op(OP_REQUEST, 80), "REQUEST");
        }
        // answered once its client is gone: the OK meets a broken pipe
        guest.send(OP_RESPONSE, 80, req.srcPort(), 0, BUF, 0, new byte[0]);
        Packet end = guest.await(k -> k.dstPort() == 80 && (k.op() == OP_RST || k.op() == OP_SHUTDOWN), "RST or SHUTDOWN");
        assertThat(end.srcPort()).isEqualTo(req.srcPort());
        CompletableFuture<VsockConnection> c = async(() -> vsock.connect(82));
        accept(82);
        await(c).close();
    }
}
