package dev.kindling.devices.ivshmem;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.sys.Mapping;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(60)
class IvshmemServerTest {
    @TempDir
    Path dir;

    static int openFds() {
        String[] l = new File("/proc/self/fd").list();
        return l == null ? -1 : l.length;
    }

    static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(10);
        }
    }

    @Test
    void handshakeGivesIdsMemoryAndEventFds() throws Exception {
        Path sock = dir.resolve("iv.sock");
        try (IvshmemServer server = IvshmemServer.start(sock, 1 << 16, 2);
                IvshmemClient a = IvshmemClient.connect(sock);
                IvshmemClient b = IvshmemClient.connect(sock)) {
            assertThat(a.ownId()).isZero();
            assertThat(b.ownId()).isEqualTo(1);
            assertThat(a.vectors()).isEqualTo(2);
            assertThat(b.ownEventFds()).hasSize(2);
            assertThat(a.memorySize()).isEqualTo(1 << 16);
            try (Mapping ma = Mapping.shared(a.memoryFd(), 0, a.memorySize());
                    Mapping mb = Mapping.shared(b.memoryFd(), 0, b.memorySize())) {
                ma.segment().set(JAVA_LONG, 4096, 0x1234_5678_9abcL);
                assertThat(mb.segment().get(JAVA_LONG, 4096)).isEqualTo(0x1234_5678_9abcL);
            }
            assertThat(b.peers()).containsEntry(0, 2).hasSize(1);
            await(() -> a.peers().equals(java.util.Map.of(1, 2)), "a to learn of b");
            assertThat(server.peers()).containsExactly(new IvshmemServer.Peer(0, 2), new IvshmemServer.Peer(1, 2));
        }
    }

    @Test
    void notifyRaisesTheOtherPeersInterruptAndWatchReplays() throws Exception {
        Path sock = dir.resolve("iv.sock");
        try (IvshmemServer server = IvshmemServer.start(sock, 4096, 2);
                IvshmemClient a = IvshmemClient.connect(sock);
                IvshmemClient b = IvshmemClient.connect(sock)) {
            await(() -> a.peers().containsKey(1), "a to learn of b");
            Semaphore v1 = new Semaphore(0);
            Semaphore v0 = new Semaphore(0);
            try (AutoCloseable h1 = b.onInterrupt(1, v1::release); AutoCloseable h0 = b.onInterrupt(0, v0::release)) {
                a.notify(1, 1);
                assertThat(v1.tryAcquire(10, TimeUnit.SECONDS)).isTrue();
                assertThat(v0.availablePermits()).isZero();
                a.notify(1, 0);
                assertThat(v0.tryAcquire(10, TimeUnit.SECONDS)).isTrue();
            }
            assertThatThrownBy(() -> a.notify(7, 0)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("peer 7");
            assertThatThrownBy(() -> a.notify(1, 2)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not 2");
            List<String> seen = new CopyOnWriteArrayList<>();
            try (AutoCloseable w = a.watch(new IvshmemPeers.Listener() {
                @Override
                public void eventFdAdded(int peer, int vector, dev.kindling.sys.EventFd eventFd) {
                    seen.add("add " + peer + "/" + vector);
                }

                @Override
                public void peerLeft(int peer) {
                    seen.add("left " + peer);
                }
            })) {
                assertThat(seen).containsExactly("add 1/0", "add 1/1");
                try (IvshmemClient c = IvshmemClient.connect(sock)) {
                    assertThat(c.ownId()).isEqualTo(2);
                    await(() -> seen.size() == 4, "a to learn of c");
                }
                await(() -> seen.size() == 5, "a to learn c left");
                assertThat(seen).containsExactly("add 1/0", "add 1/1", "add 2/0", "add 2/1", "left 2");
            }
        }
    }

    @Test
    void leavingIsAnnouncedIdsAreReusedAndNothingLeaks() throws Exception {
        Path sock = dir.resolve("iv.sock");
        int before = openFds();
        try (IvshmemServer server = IvshmemServer.start(sock, 4096, 3);
                IvshmemClient a = IvshmemClient.connect(sock)) {
            int withA = openFds();
            for (int round = 0; round < 5; round++) {
                try (IvshmemClient b = IvshmemClient.connect(sock, Duration.ofSeconds(10))) {
                    assertThat(b.ownId()).isEqualTo(1);
                    await(() -> a.peers().containsKey(1), "a to learn of b");
                }
                await(() -> a.peers().isEmpty() && server.peers().size() == 1, "b's leave");
                await(() -> openFds() == withA, "b's descriptors to close (" + openFds() + " vs " + withA + ")");
            }
        }
        assertThat(Files.exists(sock)).isFalse();
        await(() -> openFds() == before, "every descriptor to close");
    }

    @Test
    void serverCloseEndsClientsAndRejectsBadSizes() throws Exception {
        Path sock = dir.resolve("iv.sock");
        IvshmemServer server = IvshmemServer.start(sock, 8192, 1);
        try (IvshmemClient a = IvshmemClient.connect(sock)) {
            server.close();
            server.close();
            assertThat(Files.exists(sock)).isFalse();
            assertThat(a.memorySize()).isEqualTo(8192);
        }
        assertThatThrownBy(() -> IvshmemServer.start(sock, 5000, 1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("5000");
        assertThatThrownBy(() -> IvshmemServer.start(sock, 4096, 0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> IvshmemClient.connect(sock)).isInstanceOf(RuntimeException.class);
    }

    @Test
    void aClientThatStopsReadingIsDroppedNotWaitedFor() throws Exception {
        Path sock = dir.resolve("iv.sock");
        int before = openFds();
        try (IvshmemServer server = IvshmemServer.start(sock, 4096, 64);
                dev.kindling.sys.Fd silent = dev.kindling.sys.UnixSocket.connect(sock)) {
            await(() -> server.peers().size() == 1, "the silent client's handshake");
            // each join sends the silent client 64 messages with descriptors, which it never reads
            for (int round = 0; round < 200 && server.peers().stream().anyMatch(p -> p.id() == 0); round++) {
                try (IvshmemClient c = IvshmemClient.connect(sock)) {
                    assertThat(c.vectors()).isEqualTo(64);
                }
            }
            await(() -> server.peers().stream().noneMatch(p -> p.id() == 0), "the silent client to be dropped");
            try (IvshmemClient c = IvshmemClient.connect(sock)) {
                assertThat(c.ownId()).isZero();
            }
        }
        await(() -> openFds() == before, "every descriptor to close");
    }
}
