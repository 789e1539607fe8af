package dev.kindling.devices.virtio.console;

import static dev.kindling.devices.virtio.queue.VirtqueueDriver.readable;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;
import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.FakeVirtioContext;
import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.VirtioIds;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class VirtioConsoleTest {
    private static final long FEATURES = VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX | VirtioFeatures.RING_INDIRECT_DESC;
    private static final long WAIT_MS = 5_000;

    private final VirtqueueDriver rx = VirtqueueDriver.create(64, FEATURES);
    private final VirtqueueDriver tx = rx.sibling(64);
    private final FakeVirtioContext context = new FakeVirtioContext(FEATURES, List.of(rx, tx));
    private final Output out = new Output();
    private VirtioConsole console;

    @AfterEach
    void tearDown() {
        if (console != null) {
            console.close();
        }
        assertThat(context.recordingThreads().alive()).isEmpty();
        context.close();
        rx.close();
    }

    /** What the console wrote, safe to read from the test thread. */
    private static final class Output extends OutputStream {
        private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        int flushes;

        @Override
        public synchronized void write(int b) {
            bytes.write(b);
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) {
            bytes.write(b, off, len);
        }

        @Override
        public synchronized void flush() {
            flushes++;
        }

        synchronized String text() {
            return bytes.toString(UTF_8);
        }
    }

    private static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long end = System.nanoTime() + WAIT_MS * 1_000_000;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > end) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(1);
        }
    }

    private static List<Used> awaitUsed(VirtqueueDriver q, int n) throws InterruptedException {
        List<Used> all = new ArrayList<>();
        await(n + " used chains", () -> {
            for (Optional<Used> u = q.used(); u.isPresent(); u = q.used()) {
                all.add(u.get());
            }
            return all.size() >= n;
        });
        assertThat(all).hasSize(n);
        return all;
    }

    @Test
    void describesItself() {
        console = new VirtioConsole("console0", out);
        assertThat(console.deviceType()).isEqualTo(VirtioIds.CONSOLE);
        assertThat(console.queueCount()).isEqualTo(2);
        assertThat(console.features()).isZero();
    }

    @Test
    void transmittedBytesArriveInOrderAcrossManyChains() throws Exception {
        console = new VirtioConsole("console0", out);
        console.activate(context);
        StringBuilder expected = new StringBuilder();
        int line = 0;
        for (int round = 0; round < 20; round++) {
            for (int i = 0; i < 30; i++, line++) {
                String a = "line " + line + " ";
                String b = "x".repeat(line % 7) + "\n";
                expected.append(a).append(b);
                if (i % 3 == 0) {
                    tx.addIndirect(List.of(readable(a), readable(b)));
                } else {
                    tx.add(List.of(readable(a), readable(b)));
                }
            }
            context.kick(1);
            List<Used> used = awaitUsed(tx, 30);
            assertThat(used).extracting(Used::length).containsOnly(0);
        }
        await("all output", () -> out.text().length() == expected.length());
        assertThat(out.text()).isEqualTo(expected.toString());
        assertThat(out.flushes).isPositive();
    }

    @Test
    void aThrowingOutputStreamIsReportedOnceAndOutputIsDroppedAfterIt() throws Exception {
        OutputStream broken = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                throw new IOException("disk full");
            }
        };
        console = new VirtioConsole("console0", broken);
        console.activate(context);
        tx.add(List.of(readable("first")));
        tx.add(List.of(readable("second")));
        context.kick(1);
        awaitUsed(tx, 2);
        tx.add(List.of(readable("third")));
        context.kick(1);
        awaitUsed(tx, 1);
        assertThat(context.fatals()).hasSize(1);
        assertThat(context.fatals().get(0)).contains("disk full");
    }

    @Test
    void aSlowOutputStreamHoldsOnlyTheDeviceThread() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        OutputStream slow = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                try {
                    release.await(WAIT_MS, TimeUnit.MILLISECONDS);
                } catch (InterruptedException e) {
                    throw new IOException(e);
                }
            }
        };
        console = new VirtioConsole("console0", slow);
        console.activate(context);
        tx.add(List.of(readable("stuck")));
        context.kick(1); // what the vCPU does: returns at once
        assertThat(console.enqueueInput("still here".getBytes(UTF_8))).isTrue();
        rx.add(List.of(writable(64)));
        context.kick(0);
        assertThat(new String(awaitUsed(rx, 1).get(0).written(), UTF_8)).isEqualTo("still here");
        release.countDown();
        awaitUsed(tx, 1);
    }

    @Test
    void inputWaitsForBuffersAndFillsThemPartly() throws Exception {
        console = new VirtioConsole("console0", out);
        console.activate(context);
        assertThat(console.enqueueInput("hello, guest".getBytes(UTF_8))).isTrue();
        // no receive buffer yet: the bytes wait
        int a = rx.add(List.of(writable(5)));
        context.kick(0);
        Used first = awaitUsed(rx, 1).get(0);
        assertThat(first.id()).isEqualTo(a);
        assertThat(new String(first.written(), UTF_8)).isEqualTo("hello");

        int b = rx.add(List.of(writable(3), writable(100)));
        context.kick(0);
        Used second = awaitUsed(rx, 1).get(0);
        assertThat(second.id()).isEqualTo(b);
        assertThat(second.length()).as("a buffer partly filled").isEqualTo(7);
        assertThat(new String(second.written(), UTF_8)).isEqualTo(", guest");

        // a posted buffer waits for input
        int c = rx.add(List.of(writable(16)));
        context.kick(0);
        assertThat(rx.used()).isEmpty();
        assertThat(console.enqueueInput("more".getBytes(UTF_8))).isTrue();
        Used third = awaitUsed(rx, 1).get(0);
        assertThat(third.id()).isEqualTo(c);
        assertThat(new String(third.written(), UTF_8)).isEqualTo("more");
    }

    @Test
    void enqueueInputRefusesWhatDoesNotFit() {
        console = new VirtioConsole("console0", out);
        assertThat(console.enqueueInput(new byte[VirtioConsole.INPUT_BUFFER - 1])).isTrue();
        assertThat(console.enqueueInput(new byte[2])).isFalse();
        assertThat(console.enqueueInput(new byte[1])).isTrue();
    }

    @Test
    void streamInputReachesGuestBuffersAndCloseEndsABlockedRead() throws Exception {
        PipedOutputStream host = new PipedOutputStream();
        PipedInputStream in = new PipedInputStream(host, 1024);
        console = new VirtioConsole("console0", in, out);
        console.activate(context);
        for (int i = 0; i < 4; i++) {
            rx.add(List.of(writable(8)));
        }
        context.kick(0);
        host.write("typed into the console".getBytes(UTF_8));
        host.flush();
        StringBuilder got = new StringBuilder();
        await("the typed bytes", () -> {
            for (Optional<Used> u = rx.used(); u.isPresent(); u = rx.used()) {
                got.append(new String(u.get().written(), UTF_8));
            }
            return got.length() >= 22;
        });
        assertThat(got.toString()).isEqualTo("typed into the console");
        // the reader is blocked in read() now; close() must still end it
        Thread reader = context.recordingThreads().made().stream().filter(t -> t.getName().endsWith("-in")).findFirst().orElseThrow();
        assertThat(reader.isAlive()).isTrue();
        console.close();
        assertThat(reader.isAlive()).isFalse();
        assertThat(context.recordingThreads().alive()).isEmpty();
        host.close();
    }

    @Test
    void resetStopsServingAndKeepsBufferedInput() throws Exception {
        console = new VirtioConsole("console0", out);
        console.activate(context);
        console.enqueueInput("kept".getBytes(UTF_8));
        console.reset();
        assertThat(context.recordingThreads().alive()).isEmpty();
        // what the transport does on reset, then a new driver sets the queues up again
        rx.queue().reset();
        tx.queue().reset();
        try (VirtqueueDriver rx2 = VirtqueueDriver.on(rx.memory(), VirtqueueDriver.RAM_BASE + (4 << 20), 2 << 20, 16, FEATURES);
                FakeVirtioContext again = new FakeVirtioContext(FEATURES, List.of(rx2, rx2.sibling(16)))) {
            console.activate(again);
            rx2.add(List.of(writable(16)));
            again.kick(0);
            assertThat(new String(awaitUsed(rx2, 1).get(0).written(), UTF_8)).isEqualTo("kept");
            console.reset();
            assertThat(again.recordingThreads().alive()).isEmpty();
        }
    }
}
