package dev.kindling.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.testing.HostResources;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** AF_UNIX stream sockets on a path: listen, accept, connect, and bytes and descriptors over them. */
class UnixSocketTest {
    @TempDir
    Path dir;

    @Test
    void aClientAndTheServerItReachesExchangeBytesAndADescriptor() throws Exception {
        Path path = dir.resolve("vmm.sock");
        try (Fd listening = UnixSocket.listen(path, 4)) {
            assertThat(listening.what()).isEqualTo("unix socket listening on " + path);
            assertThat(Files.readAttributes(path, BasicFileAttributes.class).isOther()).as("a socket file").isTrue();
            CompletableFuture<Fd> accepted = CompletableFuture.supplyAsync(() -> UnixSocket.accept(listening));
            try (Fd client = UnixSocket.connect(path); Fd server = accepted.get(10, TimeUnit.SECONDS);
                    EventFd e = EventFd.nonBlocking()) {
                assertThat(client.what()).isEqualTo("unix socket connected to " + path);
                assertThat(server.what()).isEqualTo("connection accepted on unix socket listening on " + path);

                UnixSocket.send(client, new byte[] {1, 2, 3}, List.of(e.fd()));
                UnixSocket.Received got = UnixSocket.receive(server, 16, 2);
                assertThat(got.data()).containsExactly(1, 2, 3);
                try (Fd passed = got.fds().getFirst(); Arena arena = Arena.ofConfined()) {
                    Libc.write(passed, arena.allocateFrom(ValueLayout.JAVA_LONG, 6), 8);
                    assertThat(e.read()).isEqualTo(6);
                }
                UnixSocket.send(server, new byte[] {4}, List.of());
                assertThat(UnixSocket.receive(client, 16, 0).data()).containsExactly(4);
            }
        }
    }

    @Test
    void socketsAreCloseOnExec() throws Exception {
        Path path = dir.resolve("s");
        try (Fd listening = UnixSocket.listen(path, 1); Fd client = UnixSocket.connect(path);
                Fd server = UnixSocket.accept(listening)) {
            for (Fd fd : List.of(listening, client, server)) {
                assertThat(Files.readAllLines(Path.of("/proc/self/fdinfo/" + fd.value())).stream()
                        .filter(l -> l.startsWith("flags:"))
                        .mapToInt(l -> Integer.parseInt(l.substring(6).trim(), 8)).findFirst().orElseThrow()
                        & Libc.O_CLOEXEC).as(fd.what()).isNotZero();
            }
        }
    }

    @Test
    void aPathLongerThanSunPathIsRefusedByName() {
        Path longPath = dir.resolve("x".repeat(120));
        HostResources before = HostResources.now();
        assertThatThrownBy(() -> UnixSocket.listen(longPath, 1))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(longPath.toString()).hasMessageContaining("sun_path holds 1 to 107");
        assertThatThrownBy(() -> UnixSocket.connect(longPath)).isInstanceOf(IllegalArgumentException.class);
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aPathOfExactlyTheLimitWorks() {
        String base = dir.toString() + "/";
        Path path = Path.of(base + "p".repeat(107 - base.length()));
        try (Fd listening = UnixSocket.listen(path, 1); Fd client = UnixSocket.connect(path)) {
            assertThat(client.isOpen()).isTrue();
        }
    }

    @Test
    void failuresNameThePathAndLeakNothing() throws Exception {
        Path nobody = dir.resolve("nobody");
        Path taken = dir.resolve("taken");
        try (Fd first = UnixSocket.listen(taken, 1)) {
            HostResources before = HostResources.now();
            assertThatThrownBy(() -> UnixSocket.connect(nobody))
                    .isInstanceOf(SyscallException.class).hasMessage("connect(" + nobody + ") failed: ENOENT (2)");
            assertThatThrownBy(() -> UnixSocket.listen(taken, 1))
                    .isInstanceOf(SyscallException.class).hasMessage("bind(" + taken + ") failed: EADDRINUSE (98)");
            Files.writeString(nobody, "not a socket");
            assertThatThrownBy(() -> UnixSocket.connect(nobody)).hasMessage("connect(" + nobody + ") failed: ECONNREFUSED (111)");
            HostResources.now().assertNothingLeftSince(before);
        }
        // closed, the server is gone though its path stays
        assertThatThrownBy(() -> UnixSocket.connect(taken)).hasMessageContaining("ECONNREFUSED");
    }
}
