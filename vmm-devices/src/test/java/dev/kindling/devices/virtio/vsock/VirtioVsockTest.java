package dev.kindling.devices.virtio.vsock;

import static dev.kindling.devices.virtio.vsock.VsockGuest.op;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_REQUEST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RESPONSE;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RW;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.VirtioIds;
import dev.kindling.devices.virtio.vsock.VsockGuest.Packet;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;

class VirtioVsockTest extends VsockTestBase {
    @Test
    void describesItself() {
        vsock = new VirtioVsock("vsock0", 0xABCD_1234L, host);
        assertThat(vsock.deviceType()).isEqualTo(VirtioIds.VSOCK);
        assertThat(vsock.queueCount()).isEqualTo(3);
        assertThat(vsock.queueMaxSize(0)).isEqualTo(256);
        assertThat(vsock.configSize()).isEqualTo(8);
        assertThat(vsock.features()).isEqualTo(1L << VsockHeader.F_STREAM);
        assertThat(vsock.readConfig(0, 8)).isEqualTo(0xABCD_1234L);
        assertThat(vsock.readConfig(0, 4)).isEqualTo(0xABCD_1234L);
        assertThat(vsock.readConfig(4, 4)).isZero();
        assertThat(vsock.readConfig(1, 2)).isEqualTo(0xCD12);
        assertThat(vsock.readConfig(6, 4)).isZero();
        assertThat(vsock.connections()).isZero();
    }

    @Test
    void guestConnectsAndBytesFlowBothWays() throws Exception {
        start(false);
        listen(1234);
        GuestStream s = guestConnect(5000, 1234);
        assertThat(vsock.connections()).isOne();
        HostEnd h = accepted(1234, 0);
        guest.send(OP_RW, 5000, 1234, 0, BUF, 0, bytes("hello"));
        assertThat(new String(h.readFully(5), StandardCharsets.UTF_8)).isEqualTo("hello");
        s.keep = true;
        assertThat(h.write(bytes("world"))).isTrue();
        s.until(() -> s.received == 5, "5 bytes received");
        assertThat(s.kept.toString(StandardCharsets.UTF_8)).isEqualTo("world");
    }

    @Test
    void theLinux61BufferLayoutCarriesDataToo() throws Exception {
        start(true);
        listen(1234);
        GuestStream s = guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        s.keep = true;
        byte[] data = new byte[10_000];
        new Random(1).nextBytes(data);
        assertThat(h.write(data)).isTrue();
        s.until(() -> s.received == data.length, "all received");
        assertThat(s.kept.toByteArray()).isEqualTo(data);
    }

    @Test
    void creditCountsAcrossTheCountersWrapping() {
        int alloc = VirtioVsock.BUF_ALLOC;
        assertThat(VirtioVsock.credit(alloc, 0xFFFF_FF00, 0xFFFF_FF00)).isEqualTo(alloc);
        // 0x100 sent before the wrap and 0x100 after: 0x200 in flight
        assertThat(VirtioVsock.credit(alloc, 0x100, 0xFFFF_FF00)).isEqualTo(alloc - 0x200);
        assertThat(VirtioVsock.credit(alloc, 0x100, 0x100)).isEqualTo(alloc);
        assertThat(VirtioVsock.credit(alloc, alloc - 0x100, 0xFFFF_FF00)).isZero();
        assertThat(VirtioVsock.credit(alloc, alloc, 0xFFFF_FF00)).as("more in flight than the buffer").isZero();
        assertThat(VirtioVsock.credit(-1, 0x10, 0xFFFF_FFF0)).isEqualTo(0xFFFF_FFFFL - 0x20);
    }

    @Test
    void hostPortsWrapWithinTwoToThe30AndTwoToThe31() {
        assertThat(VirtioVsock.portAfter(VirtioVsock.FIRST_HOST_PORT)).isEqualTo(VirtioVsock.FIRST_HOST_PORT + 1);
        assertThat(VirtioVsock.portAfter(Integer.MAX_VALUE - 1)).isEqualTo(Integer.MAX_VALUE);
        assertThat(VirtioVsock.portAfter(Integer.MAX_VALUE)).isEqualTo(VirtioVsock.FIRST_HOST_PORT);
    }

    @Test
    void aGuestConnectingWhereNobodyListensGetsARst() {
        start(false);
        guest.send(OP_REQUEST, 5000, 99, 0, BUF, 0, new byte[0]);
        Packet r = guest.await(op(OP_RST, 5000), "RST");
        assertThat(r.srcPort()).isEqualTo(99);
        assertThat(vsock.connections()).isZero();
    }

    @Test
    void aHostSideThatThrowsIsARst() {
        start(false, new VirtioVsock("vsock0", VsockGuest.CID, (p, g) -> {
            throw new IllegalStateException("listener broke");
        }));
        guest.send(OP_REQUEST, 5000, 99, 0, BUF, 0, new byte[0]);
        guest.await(op(OP_RST, 5000), "RST");
        assertThat(vsock.connections()).isZero();
    }

    @Test
    void theHostConnectsFromPortsAbove2To30() throws Exception {
        start(false);
        HostConnect a = hostConnect(7000);
        assertThat(a.request().srcPort()).isEqualTo(VirtioVsock.FIRST_HOST_PORT);
        assertThat(a.request().bufAlloc()).isEqualTo(VirtioVsock.BUF_ALLOC);
        GuestStream s = accept(a);
        HostConnect b = hostConnect(7000);
        assertThat(b.request().srcPort()).isEqualTo(VirtioVsock.FIRST_HOST_PORT + 1);
        accept(b);
        assertThat(vsock.connections()).isEqualTo(2);
        s.keep = true;
        assertThat(a.end().write(bytes("ping"))).isTrue();
        s.until(() -> s.received == 4, "ping");
        assertThat(s.kept.toString(StandardCharsets.UTF_8)).isEqualTo("ping");
        s.write(bytes("pong"));
        assertThat(new String(a.end().readFully(4), StandardCharsets.UTF_8)).isEqualTo("pong");
    }

    @Test
    void aGuestRstRefusesAHostConnect() throws Exception {
        start(false);
        HostConnect c = hostConnect(7000);
        guest.send(OP_RST, 7000, c.request().srcPort(), 0, 0, 0, new byte[0]);
        assertThat(c.outcome().refused.get(10, TimeUnit.SECONDS)).contains("RST");
        assertThat(c.outcome().port).isNotDone();
        assertThat(c.end().read(true)).isEmpty(); // the device closed its end
        assertThat(vsock.connections()).isZero();
    }

    @Test
    void aGuestThatDoesNotAnswerRefusesAHostConnectAfterTheTimeout() throws Exception {
        start(false, new VirtioVsock("vsock0", VsockGuest.CID, host, Duration.ofMillis(200), VirtioVsock.CLOSE_TIMEOUT));
        long t0 = System.nanoTime();
        HostConnect c = hostConnect(7000);
        assertThat(c.outcome().refused.get(10, TimeUnit.SECONDS)).contains("did not answer");
        assertThat(System.nanoTime() - t0).isGreaterThanOrEqualTo(Duration.ofMillis(200).toNanos());
        guest.await(op(OP_RST, 7000), "RST after the timeout");
        assertThat(c.end().read(true)).isEmpty();
        // a late RESPONSE finds no connection and is reset
        guest.send(OP_RESPONSE, 7000, c.request().srcPort(), 0, BUF, 0, new byte[0]);
        guest.await(op(OP_RST, 7000), "RST for the late RESPONSE");
    }

    @Test
    void aDeviceNotInUseRefusesAtOnce() throws Exception {
        vsock = new VirtioVsock("vsock0", VsockGuest.CID, host);
        HostEnd end = new HostEnd();
        closing.add(end);
        Outcome o = new Outcome();
        vsock.connect(7000, end.device, o);
        assertThat(o.refused).isDone();
        assertThat(end.device.isOpen()).isFalse();
    }

    @Test
    void aHostStreamEpollCannotWatchIsRefusedAndTheDeviceGoesOn() throws Exception {
        start(false);
        Fd devNull = Fd.adopt(Libc.open("/dev/null", Libc.O_RDWR), "/dev/null");
        Outcome o = new Outcome();
        vsock.connect(7000, devNull, o);
        assertThat(o.refused.get(10, TimeUnit.SECONDS)).contains("cannot be watched");
        assertThat(devNull.isOpen()).isFalse();
        assertThat(vsock.connections()).isZero();
        // the device still serves: a second connect gets its REQUEST
        HostConnect c = hostConnect(7001);
        accept(c);
        assertThat(vsock.connections()).isOne();
    }

    @Test
    void megabytesFlowBothWaysAtOnceWithMatchingChecksums() throws Exception {
        start(false);
        listen(1234);
        GuestStream s = guestConnect(5000, 1234);
        HostEnd h = accepted(1234, 0);
        int size = 4 << 20;
        byte[] up = new byte[size];
        byte[] down = new byte[size];
        new Random(2).nextBytes(up);
        new Random(3).nextBytes(down);
        CompletableFuture<Long> hostGot = CompletableFuture.supplyAsync(() -> {
            CRC32 crc = new CRC32();
            crc.update(h.readFully(size));
            return crc.getValue();
        });
        CompletableFuture<Boolean> hostWrote = CompletableFuture.supplyAsync(() -> h.write(down));
        s.write(up);
        s.until(() -> s.received == size, "all host bytes received");
        CRC32 upCrc = new CRC32();
        upCrc.update(up);
        CRC32 downCrc = new CRC32();
        downCrc.update(down);
        assertThat(hostGot.get(30, TimeUnit.SECONDS)).isEqualTo(upCrc.getValue());
        assertThat(hostWrote.get(30, TimeUnit.SECONDS)).isTrue();
        assertThat(s.crc.getValue()).isEqualTo(downCrc.getValue());
        assertThat(s.overruns).isZero();
    }

    @Test
    void onceTheWorkerHasFailedConnectsAreRefusedAtOnce() throws Exception {
        start(false);
        HostEnd first = new HostEnd();
        closing.add(first);
        vsock.connect(7000, first.device, new VirtioVsock.ConnectCallback() {
            @Override
            public void connected(int hostPort) {
                throw new AssertionError("a callback failing beyond what the device handles");
            }

            @Override
            public void refused(String why) {}
        });
        Packet req = guest.await(op(OP_REQUEST, 7000), "REQUEST");
        guest.send(OP_RESPONSE, 7000, req.srcPort(), 0, BUF, 0, new byte[0]);
        long end = System.nanoTime() + 10_000_000_000L;
        while (guest.context.fatals().isEmpty()) {
            assertThat(System.nanoTime()).as("the worker failed").isLessThan(end);
            Thread.sleep(5);
        }
        HostEnd second = new HostEnd();
        closing.add(second);
        Outcome o = new Outcome();
        vsock.connect(7001, second.device, o);
        assertThat(o.refused).as("refused on the caller's thread").isDone();
        assertThat(second.device.isOpen()).isFalse();
        // the failure was the point: end here rather than in the tear-down's no-fatals check
        vsock.close();
        vsock = null;
        guest.close();
        guest = null;
    }

    @Test
    void connectsAskedWhileTheDeviceIsPausedAreBoundedByTheConnectionLimit() throws Exception {
        start(false);
        vsock.quiesce();
        List<Outcome> outcomes = new ArrayList<>();
        for (int i = 0; i <= VirtioVsock.MAX_CONNECTIONS; i++) {
            Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
            closing.add(pair[0]);
            Outcome o = new Outcome();
            outcomes.add(o);
            vsock.connect(7000 + i, pair[1], o);
        }
        assertThat(vsock.connections()).isEqualTo(VirtioVsock.MAX_CONNECTIONS);
        assertThat(outcomes.subList(0, VirtioVsock.MAX_CONNECTIONS)).noneMatch(o -> o.refused.isDone());
        assertThat(outcomes.getLast().refused).isDone();
        assertThat(outcomes.getLast().refused.get()).contains("the most it allows");
        vsock.resume();
    }

    @Test
    void manyHostConnectsAtOnceFromManyThreadsEachGetTheirOwnPort() throws Exception {
        start(false);
        int threads = 8;
        int each = 8;
        List<Outcome> outcomes = new CopyOnWriteArrayList<>();
        List<Thread> dialers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int base = 7000 + t * each;
            Thread d = new Thread(() -> {
                for (int i = 0; i < each; i++) {
                    HostEnd end = new HostEnd();
                    synchronized (closing) {
                        closing.add(end);
                    }
                    Outcome o = new Outcome();
                    outcomes.add(o);
                    vsock.connect(base + i, end.device, o);
                }
            });
            dialers.add(d);
            d.start();
        }
        Set<Integer> guestPorts = new HashSet<>();
        for (int i = 0; i < threads * each; i++) {
            Packet req = guest.await(k -> k.op() == OP_REQUEST, "REQUEST " + i);
            assertThat(guestPorts.add(req.dstPort())).isTrue();
            guest.send(OP_RESPONSE, req.dstPort(), req.srcPort(), 0, 256 * 1024, 0, new byte[0]);
        }
        for (Thread d : dialers) {
            d.join(10_000);
        }
        Set<Integer> hostPorts = new HashSet<>();
        for (Outcome o : outcomes) {
            hostPorts.add(o.port.get(10, TimeUnit.SECONDS));
        }
        assertThat(hostPorts).hasSize(threads * each);
        assertThat(hostPorts).allMatch(p -> p >= VirtioVsock.FIRST_HOST_PORT);
        assertThat(vsock.connections()).isEqualTo(threads * each);
    }
}
