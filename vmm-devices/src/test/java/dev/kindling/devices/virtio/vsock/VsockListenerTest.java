package dev.kindling.devices.virtio.vsock;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.sys.Fd;
import dev.kindling.testing.HostResources;
import java.net.BindException;
import java.nio.channels.AsynchronousCloseException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Listeners and their backlog, with the device's side of guest connections called directly. */
class VsockListenerTest {
    @Test
    void aPortHasOneListenerAtATime() throws Exception {
        HostResources before = HostResources.now();
        try (Vsock vsock = Vsock.create("vm", 3, null)) {
            VsockListener first = vsock.listen(1234);
            assertThat(first.port()).isEqualTo(1234);
            assertThatThrownBy(() -> vsock.listen(1234)).isInstanceOf(BindException.class).hasMessageContaining("1234");
            try (VsockListener other = vsock.listen(1235)) {
                assertThat(other.port()).isEqualTo(1235);
            }
            first.close();
            vsock.listen(1234).close();
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void queuesUpToTheBacklogThenRefusesAndClosesTheQueuedOnClose() throws Exception {
        HostResources before = HostResources.now();
        VsockListener listener = new VsockListener(7, l -> {});
        List<Fd> deviceEnds = new ArrayList<>();
        for (int i = 0; i < VsockListener.BACKLOG; i++) {
            Fd end = listener.guestConnects(5000 + i);
            assertThat(end).as("connection %d within the backlog", i).isNotNull();
            deviceEnds.add(end);
        }
        assertThat(listener.guestConnects(6000)).as("beyond the backlog: RST").isNull();
        VsockConnection first = listener.accept();
        assertThat(first.localPort()).isEqualTo(7);
        assertThat(first.peerPort()).isEqualTo(5000);
        VsockConnection second = listener.accept(Duration.ofMillis(10)).orElseThrow();
        assertThat(second.peerPort()).isEqualTo(5001);
        Fd again = listener.guestConnects(6001);
        assertThat(again).as("room again after accepts").isNotNull();
        deviceEnds.add(again);
        listener.close();
        assertThat(listener.guestConnects(6002)).as("closed: RST").isNull();
        assertThatThrownBy(listener::accept).isInstanceOf(AsynchronousCloseException.class);
        first.close();
        second.close();
        deviceEnds.forEach(Fd::close);
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void acceptWaitsForAConnectionAndCloseWakesIt() throws Exception {
        VsockListener listener = new VsockListener(9, l -> {});
        assertThat(listener.accept(Duration.ofMillis(30))).isEmpty();
        CompletableFuture<Object> waiting = new CompletableFuture<>();
        Thread t = Thread.ofPlatform().daemon().start(() -> {
            try {
                waiting.complete(listener.accept());
            } catch (Exception e) {
                waiting.complete(e);
            }
        });
        Fd end = listener.guestConnects(77);
        Object got = waiting.get(5, TimeUnit.SECONDS);
        assertThat(got).isInstanceOf(VsockConnection.class);
        ((VsockConnection) got).close();
        end.close();

        CompletableFuture<Object> blocked = new CompletableFuture<>();
        Thread u = Thread.ofPlatform().daemon().start(() -> {
            try {
                blocked.complete(listener.accept(Duration.ofSeconds(20)));
            } catch (Exception e) {
                blocked.complete(e);
            }
        });
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (u.getState() != Thread.State.TIMED_WAITING) {
            assertThat(System.nanoTime()).as("accept waiting").isLessThan(until);
            Thread.sleep(1);
        }
        listener.close();
        assertThat(blocked.get(5, TimeUnit.SECONDS)).isInstanceOf(AsynchronousCloseException.class);
        t.join(5_000);
        u.join(5_000);
    }

    @Test
    void aClosedVsockRefusesNewListeners() throws Exception {
        Vsock vsock = Vsock.create("vm", 3, null);
        VsockListener l = vsock.listen(5);
        vsock.close();
        assertThat(l.guestConnects(1)).as("the listener closed with the vsock").isNull();
        assertThatThrownBy(() -> vsock.listen(6)).isInstanceOf(java.nio.channels.ClosedChannelException.class);
        assertThat(Optional.of(vsock.guestCid())).hasValue(3L);
    }
}
