package dev.kindling.devices.ivshmem;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.sys.Errno;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.SyscallException;
import dev.kindling.sys.UnixSocket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The client against a fake server that breaks the protocol: clear errors, no descriptor leaked. */
@Timeout(60)
class IvshmemClientTest {
    @TempDir
    Path dir;

    /** One step of a fake server: a value with the given descriptors, or {@code close} to hang up. */
    record Step(long value, int fds, boolean close) {
        static Step msg(long value) {
            return new Step(value, 0, false);
        }

        static Step fd(long value) {
            return new Step(value, 1, false);
        }

        static Step fds(long value, int n) {
            return new Step(value, n, false);
        }

        static Step hangUp() {
            return new Step(0, 0, true);
        }
    }

    /** Runs a one-connection server sending {@code steps}, then keeps the connection open until the client gives up. */
    private RuntimeException connectTo(List<Step> steps) throws Exception {
        Path sock = dir.resolve("bad.sock");
        CountDownLatch done = new CountDownLatch(1);
        List<Throwable> serverErrors = new ArrayList<>();
        // counted with the fake server's own descriptors all closed: it runs in this process
        int before = IvshmemServerTest.openFds();
        RuntimeException thrown = null;
        try (Fd listening = UnixSocket.listen(sock, 1); EventFd memory = EventFd.create()) {
            Fd shm = Fd.adopt(Libc.memfdCreate("bad", 0), "memfd");
            Libc.ftruncate(shm, 4096);
            Thread t = new Thread(() -> {
                try (Fd c = UnixSocket.accept(listening); shm) {
                    for (Step s : steps) {
                        if (s.close) {
                            return;
                        }
                        List<Fd> fds = new ArrayList<>();
                        for (int i = 0; i < s.fds; i++) {
                            fds.add(i == 0 && s.value == -1 ? shm : memory.fd());
                        }
                        UnixSocket.send(c, ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(s.value).array(), fds);
                    }
                    done.await(20, TimeUnit.SECONDS);
                } catch (SyscallException e) {
                    // the client hung up on a bad step, as it should, before the later steps were sent
                    if (e.errno() != Errno.EPIPE && e.errno() != Errno.ECONNRESET) {
                        serverErrors.add(e);
                    }
                } catch (Throwable e) {
                    serverErrors.add(e);
                }
            });
            t.start();
            try {
                IvshmemClient.connect(sock, Duration.ofSeconds(2)).close();
            } catch (RuntimeException e) {
                thrown = e;
            }
            done.countDown();
            t.join(20_000);
            assertThat(t.isAlive()).isFalse();
            assertThat(serverErrors).isEmpty();
        } finally {
            java.nio.file.Files.deleteIfExists(sock);
        }
        assertThat(IvshmemServerTest.openFds()).as("descriptors open").isEqualTo(before);
        return thrown;
    }

    @Test
    void aWellBehavedFakeServerConnects() throws Exception {
        assertThat(connectTo(List.of(Step.msg(0), Step.msg(3), Step.fd(-1), Step.fd(1), Step.fd(3)))).isNull();
    }

    @Test
    void wrongVersionIsNamed() throws Exception {
        assertThat(connectTo(List.of(Step.msg(1), Step.msg(0)))).isInstanceOf(IvshmemProtocolException.class)
                .hasMessageContaining("protocol version 1");
    }

    @Test
    void garbageIdsAreNamed() throws Exception {
        assertThat(connectTo(List.of(Step.msg(0), Step.msg(-5)))).isInstanceOf(IvshmemProtocolException.class)
                .hasMessageContaining("-5");
        assertThat(connectTo(List.of(Step.msg(0), Step.msg(70000)))).isInstanceOf(IvshmemProtocolException.class)
                .hasMessageContaining("70000");
        assertThat(connectTo(List.of(Step.msg(0), Step.msg(0), Step.fd(-1), Step.fd(70000))))
                .isInstanceOf(IvshmemProtocolException.class).hasMessageContaining("peer 70000");
    }

    @Test
    void sharedMemoryWithoutFdIsNamed() throws Exception {
        assertThat(connectTo(List.of(Step.msg(0), Step.msg(0), Step.msg(-1))))
                .isInstanceOf(IvshmemProtocolException.class).hasMessageContaining("shared memory without a descriptor");
    }

    @Test
    void twoOrManyFdsInOneMessageAreClosed() throws Exception {
        assertThat(connectTo(List.of(Step.msg(0), Step.msg(0), Step.fds(-1, 2))))
                .isInstanceOf(IvshmemProtocolException.class).hasMessageContaining("2 descriptors in one message");
        assertThat(connectTo(List.of(Step.msg(0), Step.msg(0), Step.fd(-1), Step.fds(1, 9))))
                .isInstanceOf(IvshmemProtocolException.class).hasMessageContaining("too many descriptors");
    }

    @Test
    void hangingUpMidHandshakeIsNamed() throws Exception {
        assertThat(connectTo(List.of(Step.msg(0), Step.msg(0), Step.fd(-1), Step.fd(1), Step.hangUp())))
                .isInstanceOf(IvshmemProtocolException.class).hasMessageContaining("closed the connection");
        assertThat(connectTo(List.of(Step.msg(0), Step.hangUp())))
                .isInstanceOf(IvshmemProtocolException.class).hasMessageContaining("closed the connection");
    }

    @Test
    void silenceIsATimeout() throws Exception {
        assertThat(connectTo(List.of(Step.msg(0), Step.msg(0), Step.fd(-1))))
                .isInstanceOf(IvshmemProtocolException.class).hasMessageContaining("no own eventfds");
        assertThat(connectTo(List.of(Step.msg(0))))
                .isInstanceOf(IvshmemProtocolException.class).hasMessageContaining("in time");
    }
}
