package dev.kindling.devices.virtio.vsock;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.testing.HostResources;
import java.io.InterruptedIOException;
import java.net.ConnectException;
import java.net.SocketTimeoutException;
import java.nio.channels.ClosedChannelException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The Java API before a driver runs the device: what a program sees while the guest boots. */
class VsockTest {
    @Test
    void describesItself() throws Exception {
        try (Vsock vsock = Vsock.create("vm", 42, null)) {
            assertThat(vsock.guestCid()).isEqualTo(42);
            assertThat(vsock.device().guestCid()).isEqualTo(42);
            assertThat(vsock.udsPath()).isEmpty();
        }
        assertThatThrownBy(() -> Vsock.create("vm", 2, null)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void connectBeforeTheDriverRunsIsRefusedAndConnectWithATimeoutWaits() throws Exception {
        HostResources before = HostResources.now();
        try (Vsock vsock = Vsock.create("vm", 3, null)) {
            assertThatThrownBy(() -> vsock.connect(52)).isInstanceOf(ConnectException.class)
                    .hasMessageContaining("52").hasMessageContaining("not in use");
            long start = System.nanoTime();
            assertThatThrownBy(() -> vsock.connect(52, Duration.ofMillis(300))).isInstanceOf(SocketTimeoutException.class)
                    .hasMessageContaining("vsock guest port 52").hasMessageContaining(" ms");
            assertThat(System.nanoTime() - start).as("waited the timeout").isGreaterThanOrEqualTo(TimeUnit.MILLISECONDS.toNanos(300));
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void anInterruptEndsTheWait() throws Exception {
        try (Vsock vsock = Vsock.create("vm", 3, null)) {
            CompletableFuture<Throwable> failed = new CompletableFuture<>();
            Thread t = Thread.ofPlatform().daemon().start(() -> {
                try {
                    vsock.connect(52, Duration.ofSeconds(60));
                    failed.complete(new AssertionError("connected"));
                } catch (Exception e) {
                    failed.complete(e);
                }
            });
            // interrupted only once it waits, so the wait itself is what the interrupt ends
            long end = System.nanoTime() + 10_000_000_000L;
            while (t.getState() != Thread.State.WAITING && t.getState() != Thread.State.TIMED_WAITING) {
                assertThat(System.nanoTime()).as("the connect waits").isLessThan(end);
                Thread.onSpinWait();
            }
            t.interrupt();
            assertThat(failed.get(10, TimeUnit.SECONDS)).isInstanceOf(InterruptedIOException.class);
            t.join(5_000);
        }
    }

    @Test
    void aClosedVsockConnectsNoMore() throws Exception {
        Vsock vsock = Vsock.create("vm", 3, null);
        vsock.close();
        vsock.close();
        assertThatThrownBy(() -> vsock.connect(52)).isInstanceOf(ClosedChannelException.class);
    }
}
