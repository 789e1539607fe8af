package dev.kindling.devices.virtio.vsock;

import static dev.kindling.devices.virtio.vsock.VsockGuest.op;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_REQUEST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RESPONSE;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.vsock.VsockGuest.Packet;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;

/** Set-up shared by the vsock device tests: a guest driver, a host side that accepts on listened ports. */
abstract class VsockTestBase {
    static final int BUF = 256 * 1024;

    final List<AutoCloseable> closing = new ArrayList<>();
    /** Host port -> the device ends the host side hands out, one each time the guest connects. */
    final Map<Integer, List<HostEnd>> listeners = new ConcurrentHashMap<>();
    final VsockHost host = (port, guestPort) -> {
        List<HostEnd> ends = listeners.get(port);
        if (ends == null) {
            return null;
        }
        HostEnd e = new HostEnd();
        synchronized (ends) {
            ends.add(e);
        }
        return e.device;
    };
    VsockGuest guest;
    VirtioVsock vsock;

    @AfterEach
    void tearDown() throws Exception {
        if (vsock != null) {
            vsock.close();
        }
        if (guest != null) {
            assertThat(guest.context.recordingThreads().alive()).isEmpty();
            assertThat(guest.context.fatals()).isEmpty();
            guest.close();
        }
        for (List<HostEnd> ends : listeners.values()) {
            for (HostEnd e : ends) {
                e.close();
            }
        }
        for (AutoCloseable c : closing) {
            c.close();
        }
    }

    void start(boolean splitRx) {
        start(splitRx, new VirtioVsock("vsock0", VsockGuest.CID, host));
    }

    void start(boolean splitRx, VirtioVsock device) {
        vsock = device;
        guest = new VsockGuest(splitRx);
        vsock.activate(guest.context);
    }

    void listen(int port) {
        listeners.put(port, new ArrayList<>());
    }

    HostEnd accepted(int port, int index) {
        List<HostEnd> ends = listeners.get(port);
        synchronized (ends) {
            return ends.get(index);
        }
    }

    /** The guest connects from {@code guestPort} to host port {@code port}, which listens. */
    GuestStream guestConnect(int guestPort, int port) {
        guest.send(OP_REQUEST, guestPort, port, 0, BUF, 0, new byte[0]);
        Packet r = guest.await(op(OP_RESPONSE, guestPort), "RESPONSE");
        assertThat(r.srcPort()).isEqualTo(port);
        assertThat(r.srcCid()).isEqualTo(VirtioVsock.HOST_CID);
        assertThat(r.dstCid()).isEqualTo(VsockGuest.CID);
        assertThat(r.bufAlloc()).isEqualTo(VirtioVsock.BUF_ALLOC);
        GuestStream s = new GuestStream(guest, guestPort, port);
        s.onPacket(r);
        return s;
    }

    /** Outcome of a host-initiated connect. */
    static final class Outcome implements VirtioVsock.ConnectCallback {
        final CompletableFuture<Integer> port = new CompletableFuture<>();
        final CompletableFuture<String> refused = new CompletableFuture<>();

        @Override
        public void connected(int hostPort) {
            port.complete(hostPort);
        }

        @Override
        public void refused(String why) {
            refused.complete(why);
        }
    }

    record HostConnect(HostEnd end, Outcome outcome, Packet request) {}

    HostConnect hostConnect(int guestPort) {
        HostEnd end = new HostEnd();
        closing.add(end);
        Outcome o = new Outcome();
        vsock.connect(guestPort, end.device, o);
        Packet req = guest.await(op(OP_REQUEST, guestPort), "REQUEST");
        return new HostConnect(end, o, req);
    }

    GuestStream accept(HostConnect c) throws Exception {
        int port = c.request().srcPort();
        guest.send(OP_RESPONSE, c.request().dstPort(), port, 0, BUF, 0, new byte[0]);
        assertThat(c.outcome().port.get(10, TimeUnit.SECONDS)).isEqualTo(port);
        GuestStream s = new GuestStream(guest, c.request().dstPort(), port);
        s.onPacket(c.request());
        return s;
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

}
