package dev.kindling.devices.virtio.vsock;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static dev.kindling.devices.virtio.vsock.UdsClients.dial;
import static dev.kindling.devices.virtio.vsock.UdsClients.readToClose;
import static dev.kindling.devices.virtio.vsock.UdsClients.send;

import dev.kindling.sys.Errno;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.SyscallException;
import dev.kindling.testing.HostResources;
import java.io.IOException;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.net.StandardProtocolFamily;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The Unix-socket server's handshake faults, with a device whose driver never started (so every
 * well-formed CONNECT is refused too): each client is closed, and the server carries on.
 */
class UnixSocketServerTest {
    private HostResources before;
    private final Path dir;
    private final Path uds;

    UnixSocketServerTest() throws IOException {
        dir = Files.createTempDirectory(Path.of("/tmp"), "vsk");
        uds = dir.resolve("v.sock");
    }

    /** Loads and opens what the JDK keeps for Unix-domain channels before the first count. */
    @BeforeEach
    void warmUp() throws IOException {
        Path warm = dir.resolve("warm.sock");
        try (Vsock vsock = Vsock.create("warm", 3, warm, Duration.ofMillis(100)); SocketChannel c = dial(warm)) {
            send(c, "x\n");
            readToClose(c);
        }
        before = HostResources.now();
    }

    @AfterEach
    void tearDown() throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void listensOnThePathAndRemovesItOnClose() throws IOException {
        try (Vsock vsock = Vsock.create("vm", 3, uds)) {
            assertThat(vsock.udsPath()).hasValue(uds);
            assertThat(Files.exists(uds)).isTrue();
        }
        assertThat(Files.exists(uds)).isFalse();
    }

    @Test
    void refusesAPathThatExists() throws IOException {
        Files.createFile(uds);
        assertThatThrownBy(() -> Vsock.create("vm", 3, uds)).isInstanceOf(IOException.class).hasMessageContaining("exists");
        assertThat(Files.exists(uds)).as("left as it was").isTrue();
    }

    @Test
    void closesEveryMisbehavingClientAndCarriesOn() throws Exception {
        try (Vsock vsock = Vsock.create("vm", 3, uds, Duration.ofMillis(500))) {
            List<SocketChannel> clients = new ArrayList<>();
            SocketChannel garbage = dial(uds);
            send(garbage, "GET / HTTP/1.1\r\n\r\n");
            SocketChannel overlong = dial(uds);
            send(overlong, "CONNECT " + "1".repeat(40));
            SocketChannel noPort = dial(uds);
            send(noPort, "CONNECT\n");
            SocketChannel outOfRange = dial(uds);
            send(outOfRange, "CONNECT 4294967296\n");
            SocketChannel silent = dial(uds);
            SocketChannel partial = dial(uds);
            send(partial, "CONNECT 5");
            SocketChannel refused = dial(uds);
            send(refused, "connect 52\n");
            clients.addAll(List.of(garbage, overlong, noPort, outOfRange, silent, partial, refused));
            SocketChannel leaves = dial(uds);
            send(leaves, "CONNE");
            leaves.close();
            for (SocketChannel c : clients) {
                assertThat(readToClose(c)).as("what the server sent before closing").isEmpty();
                c.close();
            }
            try (SocketChannel after = dial(uds)) {
                send(after, "CONNECT 1\n");
                assertThat(readToClose(after)).isEmpty();
            }
        }
    }

    @Test
    void manyClientsDialingAtOnceEachGetAnAnswer() throws Exception {
        try (Vsock vsock = Vsock.create("vm", 3, uds)) {
            List<SocketChannel> clients = new ArrayList<>();
            try {
                for (int i = 0; i < 64; i++) {
                    SocketChannel c = dial(uds);
                    clients.add(c);
                    send(c, "CONNECT " + (1000 + i) + "\n");
                }
                for (SocketChannel c : clients) {
                    assertThat(readToClose(c)).as("refused: closed with no OK").isEmpty();
                }
            } finally {
                for (SocketChannel c : clients) {
                    c.close();
                }
            }
        }
    }

    @Test
    void runningOutOfDescriptorsPausesAcceptingInsteadOfSpinning() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        AtomicBoolean exhausted = new AtomicBoolean(true);
        UnixSocketServer.Acceptor acceptor = l -> {
            calls.incrementAndGet();
            if (exhausted.get()) {
                throw new SyscallException("accept4", Errno.EMFILE);
            }
            return Libc.accept4(l, Libc.O_NONBLOCK);
        };
        Path path = dir.resolve("e.sock");
        try (Vsock vsock = Vsock.create("vm", 3, uds);
                UnixSocketServer server = new UnixSocketServer("vm2", path, vsock.device(), Duration.ofSeconds(1), acceptor);
                SocketChannel waiting = dial(path)) {
            long start = System.nanoTime();
            while (calls.get() < 3) {
                assertThat(System.nanoTime() - start).as("accept tried again").isLessThan(10_000_000_000L);
                Thread.sleep(10);
            }
            // a deliberate observation window: a listener left readable in the set would be tried
            // thousands of times in it, a paused one a few times
            Thread.sleep(500);
            long seconds = (System.nanoTime() - start) / 1_000_000_000 + 1;
            assertThat(calls.get()).as("accept calls").isLessThan((int) (seconds * 1000 / UnixSocketServer.ACCEPT_PAUSE.toMillis()) + 5);
            exhausted.set(false);
            send(waiting, "CONNECT 1\n");
            assertThat(readToClose(waiting)).as("accepted once descriptors are back, then refused").isEmpty();
        }
    }

    @Test
    void aServerThreadThatDiesUnlinksItsPathSoClientsAreRefusedNotLeftWaiting() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        UnixSocketServer.Acceptor dies = l -> {
            calls.incrementAndGet();
            throw new StackOverflowError("the accept path failing beyond what the server handles");
        };
        Path path = dir.resolve("d.sock");
        try (Vsock vsock = Vsock.create("vm", 3, uds);
                UnixSocketServer server = new UnixSocketServer("vm2", path, vsock.device(), Duration.ofSeconds(1), dies)) {
            dial(path).close();
            long end = System.nanoTime() + 10_000_000_000L;
            while (Files.exists(path)) {
                assertThat(System.nanoTime()).as("the path removed").isLessThan(end);
                Thread.sleep(5);
            }
            assertThat(calls.get()).isOne();
            assertThatThrownBy(() -> dial(path).close()).isInstanceOf(IOException.class);
        }
    }

    @Test
    void guestConnectionsReachTheListenerAtPathUnderscorePort() throws Exception {
        try (Vsock vsock = Vsock.create("vm", 3, uds, Duration.ofSeconds(3));
                UnixSocketServer server = new UnixSocketServer("vm2", dir.resolve("w.sock"), vsock.device(), Duration.ofSeconds(1));
                ServerSocketChannel host = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            host.bind(UnixDomainSocketAddress.of(Path.of(dir.resolve("w.sock") + "_1073741824")));
            try (Fd toHost = server.connectToHost(1 << 30); SocketChannel accepted = host.accept()) {
                assertThat(toHost).isNotNull();
                assertThat(accepted).isNotNull();
            }
            assertThat(server.connectToHost(53)).as("nobody at <path>_53").isNull();
            assertThat(server.connectToHost(-1)).as("4294967295, nobody there").isNull();
        }
    }
}
