package dev.kindling.devices.virtio.vsock;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.testing.HostResources;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.ClosedByInterruptException;
import java.nio.channels.ClosedChannelException;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The host program's end of a connection, over a socket pair whose other end stands for the device. */
class VsockConnectionTest {
    private final HostResources before = HostResources.now();
    private final Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
    private final Fd device = pair[1];
    private final VsockConnection connection = new VsockConnection(pair[0], 1 << 30, 52);

    @AfterEach
    void tearDown() throws InterruptedException {
        connection.close();
        device.close();
        for (Thread t : started) {
            t.join(5_000);
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    private void deviceSends(byte[] data) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment b = arena.allocateFrom(ValueLayout.JAVA_BYTE, data);
            assertThat(Libc.send(device, b, data.length, 0)).isEqualTo(data.length);
        }
    }

    private byte[] deviceReceives(int max) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment b = arena.allocate(max);
            long n = Libc.recv(device, b, max, 0);
            return n <= 0 ? new byte[0] : b.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE);
        }
    }

    @Test
    void portsAreTheOnesGiven() {
        assertThat(connection.localPort()).isEqualTo(1 << 30);
        assertThat(connection.peerPort()).isEqualTo(52);
        assertThat(connection.isOpen()).isTrue();
    }

    @Test
    void streamsCarryBytesBothWaysAndEndOfStream() throws IOException {
        deviceSends("hello".getBytes());
        byte[] b = new byte[16];
        InputStream in = connection.inputStream();
        assertThat(in.read(b)).isEqualTo(5);
        assertThat(new String(b, 0, 5)).isEqualTo("hello");
        connection.outputStream().write("world".getBytes());
        assertThat(new String(deviceReceives(16))).isEqualTo("world");
        deviceSends(new byte[] {(byte) 0xfe});
        assertThat(in.read()).isEqualTo(0xfe);
        Libc.shutdown(device, Libc.SHUT_WR);
        assertThat(in.read(b)).isEqualTo(-1);
        assertThat(in.read()).isEqualTo(-1);
    }

    @Test
    void channelCarriesBytesBothWays() throws IOException {
        deviceSends("abc".getBytes());
        ByteBuffer heap = ByteBuffer.allocate(2);
        assertThat(connection.read(heap)).isEqualTo(2);
        ByteBuffer direct = ByteBuffer.allocateDirect(8);
        assertThat(connection.read(direct)).isEqualTo(1);
        assertThat(connection.read(ByteBuffer.allocate(0))).isZero();
        assertThat(new String(heap.array())).isEqualTo("ab");
        assertThat(direct.flip().get()).isEqualTo((byte) 'c');
        ByteBuffer out = ByteBuffer.wrap("xyz!".getBytes()).position(1);
        assertThat(connection.write(out)).isEqualTo(3);
        assertThat(out.hasRemaining()).isFalse();
        assertThat(new String(deviceReceives(16))).isEqualTo("yz!");
    }

    @Test
    void aLargeWriteBlocksUntilThePeerReadsAndArrivesWhole() throws Exception {
        byte[] data = new byte[4 * 1024 * 1024 + 17];
        new Random(7).nextBytes(data);
        CompletableFuture<Throwable> writer = failureOf(() -> {
            connection.outputStream().write(data);
            connection.shutdownOutput();
            throw new IOException("done");
        });
        byte[] got = new byte[data.length];
        int at = 0;
        while (true) {
            byte[] chunk = deviceReceives(256 * 1024);
            if (chunk.length == 0) {
                break;
            }
            System.arraycopy(chunk, 0, got, at, chunk.length);
            at += chunk.length;
        }
        assertThat(writer.get(10, TimeUnit.SECONDS)).hasMessage("done");
        assertThat(at).isEqualTo(data.length);
        assertThat(got).isEqualTo(data);
    }

    @Test
    void shutdownOutputEndsOnlyTheOutput() throws IOException {
        connection.shutdownOutput();
        assertThat(deviceReceives(4)).isEmpty();
        assertThatThrownBy(() -> connection.outputStream().write(1)).isInstanceOf(IOException.class);
        deviceSends("still".getBytes());
        assertThat(connection.inputStream().readNBytes(5)).isEqualTo("still".getBytes());
    }

    @Test
    void closeWakesABlockedReaderAndWriter() throws Exception {
        CompletableFuture<Throwable> reader = failureOf(() -> connection.inputStream().read(new byte[8]));
        CompletableFuture<Throwable> writer = failureOf(() -> {
            byte[] big = new byte[1 << 20];
            while (true) {
                connection.outputStream().write(big);
            }
        });
        awaitBlocked();
        connection.close();
        assertThat(reader.get(5, TimeUnit.SECONDS)).isInstanceOf(AsynchronousCloseException.class);
        assertThat(writer.get(5, TimeUnit.SECONDS)).isInstanceOf(AsynchronousCloseException.class);
        assertThat(connection.isOpen()).isFalse();
        int chunks = 0;
        while (deviceReceives(1 << 20).length > 0) {
            assertThat(++chunks).as("the device end reads what was queued, then end of stream").isLessThan(1000);
        }
        assertThatThrownBy(() -> connection.inputStream().read()).isInstanceOf(ClosedChannelException.class);
        assertThatThrownBy(() -> connection.write(ByteBuffer.allocate(1))).isInstanceOf(ClosedChannelException.class);
        connection.close();
    }

    @Test
    void theGuestGoneIsEndOfStreamForReadsAndAnErrorForWrites() throws IOException {
        device.close();
        assertThat(connection.inputStream().read()).isEqualTo(-1);
        assertThatThrownBy(() -> connection.outputStream().write(new byte[10])).isInstanceOf(IOException.class)
                .hasMessageContaining("closed the connection");
    }

    @Test
    void interruptEndsABlockedStreamReadAndLeavesTheConnectionOpen() throws Exception {
        AtomicReference<Thread> t = new AtomicReference<>();
        CompletableFuture<Throwable> reader = failureOf(() -> {
            t.set(Thread.currentThread());
            try {
                connection.inputStream().read();
            } finally {
                assertThat(Thread.interrupted()).as("the interrupt status stays set").isTrue();
            }
        });
        awaitBlocked();
        t.get().interrupt();
        assertThat(reader.get(5, TimeUnit.SECONDS)).isInstanceOf(InterruptedIOException.class);
        assertThat(connection.isOpen()).isTrue();
    }

    @Test
    void interruptClosesTheChannel() throws Exception {
        AtomicReference<Thread> t = new AtomicReference<>();
        CompletableFuture<Throwable> reader = failureOf(() -> {
            t.set(Thread.currentThread());
            try {
                connection.read(ByteBuffer.allocate(4));
            } finally {
                Thread.interrupted();
            }
        });
        awaitBlocked();
        t.get().interrupt();
        assertThat(reader.get(5, TimeUnit.SECONDS)).isInstanceOf(ClosedByInterruptException.class);
        assertThat(connection.isOpen()).isFalse();
    }

    @Test
    void closingAStreamClosesTheConnection() throws IOException {
        OutputStream out = connection.outputStream();
        out.close();
        assertThat(connection.isOpen()).isFalse();
        assertThat(deviceReceives(4)).isEmpty();
    }

    private final List<Thread> started = new CopyOnWriteArrayList<>();

    /** Waits until every thread started by {@link #failureOf} waits in the socket's poll. */
    private void awaitBlocked() throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!started.stream().allMatch(VsockConnectionTest::polling)) {
            assertThat(System.nanoTime()).as("threads blocked in the connection").isLessThan(end);
            Thread.sleep(5);
        }
    }

    private static boolean polling(Thread t) {
        return Arrays.stream(t.getStackTrace()).anyMatch(f -> f.getClassName().equals(BlockingSocket.class.getName())
                && f.getMethodName().equals("await"));
    }

    private interface Body {
        void run() throws Exception;
    }

    private static Throwable catching(Body body) {
        try {
            body.run();
            return null;
        } catch (Throwable t) {
            return t;
        }
    }

    private CompletableFuture<Throwable> failureOf(Body body) {
        CompletableFuture<Throwable> f = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            Throwable e = catching(body);
            f.complete(e == null ? new AssertionError("returned without failing") : e);
        });
        t.setDaemon(true);
        started.add(t);
        t.start();
        return f;
    }


    @Test
    void aResetIsAnErrorNotAnEndOfStream() throws IOException {
        connection.write(ByteBuffer.wrap(new byte[] {1, 2, 3}));
        device.close(); // with our bytes unread: the reader sees ECONNRESET
        assertThatThrownBy(() -> connection.read(ByteBuffer.allocate(16)))
                .isInstanceOf(IOException.class).hasMessageContaining("reset by the guest");
    }

    @Test
    void aFailedWriteStillAdvancesThePositionByWhatWasSent() throws Exception {
        ByteBuffer src = ByteBuffer.allocate(8 << 20);
        CompletableFuture<Throwable> failed = new CompletableFuture<>();
        Thread writer = Thread.ofPlatform().start(() -> {
            try {
                connection.write(src);
                failed.complete(null);
            } catch (Throwable t) {
                failed.complete(t);
            }
        });
        started.add(writer);
        assertThat(deviceReceives(1000)).isNotEmpty();
        device.close();
        assertThat(failed.get(10, TimeUnit.SECONDS)).isInstanceOf(IOException.class);
        assertThat(src.position()).as("bytes sent before the failure").isBetween(1000, (8 << 20) - 1);
    }
}
