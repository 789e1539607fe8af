package dev.kindling.devices.legacy;

import static dev.kindling.devices.legacy.Serial16550.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class Serial16550Test {
    private final RecordingLine irq = new RecordingLine(4);
    private final ByteArrayOutputStream sink = new ByteArrayOutputStream();
    private Serial16550 uart = new Serial16550("serial-test", irq, null, sink);

    @AfterEach
    void close() {
        uart.close();
    }

    private int in(int reg) {
        return (int) uart.read(reg, 1);
    }

    private void out(int reg, int v) {
        uart.write(reg, 1, v);
    }

    private String output() throws InterruptedException {
        uart.drainOutput();
        synchronized (sink) {
            return sink.toString(StandardCharsets.ISO_8859_1);
        }
    }

    @Test
    void resetValues() {
        assertThat(in(IER)).isZero();
        assertThat(in(IIR_FCR)).isEqualTo(IIR_NO_INT);
        assertThat(in(LCR)).isEqualTo(0x03);
        assertThat(in(MCR)).isEqualTo(MCR_OUT2);
        assertThat(in(LSR)).isEqualTo(LSR_THRE | LSR_TEMT);
        assertThat(in(MSR)).isEqualTo(MSR_CTS | MSR_DSR | MSR_DCD);
        assertThat(in(SCR)).isZero();
        assertThat(uart.divisor()).isEqualTo(12);
        assertThat(irq.events()).isEmpty();
        assertThat(uart.busRanges()).singleElement().satisfies(r -> {
            assertThat(r.base()).isEqualTo(COM1_BASE);
            assertThat(r.length()).isEqualTo(LENGTH);
            assertThat(r.device()).isSameAs(uart);
        });
    }

    @Test
    void scratchRegisterHoldsAnyByte() {
        out(SCR, 0x5a);
        assertThat(in(SCR)).isEqualTo(0x5a);
        out(SCR, 0x1a5); // only the low byte counts
        assertThat(in(SCR)).isEqualTo(0xa5);
    }

    @Test
    void invalidAccessesAreIgnored() {
        out(SCR, 0x11);
        assertThat(uart.read(SCR, 2)).isEqualTo(0xffff);
        assertThat(uart.read(SCR, 4)).isEqualTo(0xffffffffL);
        assertThat(uart.read(8, 1)).isEqualTo(0xff);
        assertThat(uart.read(-1, 1)).isEqualTo(0xff);
        assertThat(uart.read(0, 3)).isEqualTo(0xffffff);
        uart.write(SCR, 2, 0x2222);
        uart.write(8, 1, 0x33);
        uart.write(0, 0, 0x33);
        assertThat(in(SCR)).isEqualTo(0x11);
        out(LSR, 0); // read-only
        out(MSR, 0);
        assertThat(in(LSR)).isEqualTo(LSR_THRE | LSR_TEMT);
        assertThat(in(MSR)).isEqualTo(0xb0);
    }

    @Test
    void divisorLatchReplacesRbrAndIer() throws Exception {
        out(LCR, 0x83); // DLAB, 8N1
        out(RBR_THR, 0x01);
        out(IER, 0x00);
        assertThat(in(RBR_THR)).isEqualTo(0x01);
        assertThat(in(IER)).isZero();
        assertThat(uart.divisor()).isEqualTo(1);
        out(IER, 0x03);
        assertThat(uart.divisor()).isEqualTo(0x301);
        out(LCR, 0x03);
        assertThat(in(LCR)).isEqualTo(0x03);
        assertThat(in(IER)).isZero(); // the real IER was untouched
        // nothing was transmitted while DLAB was set
        assertThat(output()).isEmpty();
        out(RBR_THR, 'A');
        assertThat(output()).isEqualTo("A");
    }

    @Test
    void transmitsToTheOutputStream() throws Exception {
        for (char c : "hello\n".toCharArray()) {
            out(RBR_THR, c);
        }
        assertThat(output()).isEqualTo("hello\n");
        assertThat(in(LSR) & (LSR_THRE | LSR_TEMT)).isEqualTo(LSR_THRE | LSR_TEMT);
    }

    @Test
    void thrEmptyInterruptRaisesOnEnableClearsOnIirReadAndReturnsAfterEachByte() {
        out(IER, IER_THRI);
        assertThat(irq.events()).containsExactly("1");
        assertThat(uart.interruptAsserted()).isTrue();
        assertThat(in(IIR_FCR)).isEqualTo(IIR_THRI);
        assertThat(irq.events()).containsExactly("1", "0");
        assertThat(in(IIR_FCR)).isEqualTo(IIR_NO_INT); // reading IIR cleared it
        irq.clear();
        out(RBR_THR, 'x');
        // the write drops THRE and raises it again once the byte left: an edge per byte
        assertThat(irq.events()).containsExactly("1");
        assertThat(in(IIR_FCR)).isEqualTo(IIR_THRI);
        irq.clear();
        out(RBR_THR, 'y'); // line low now: the write gives a fresh rising edge
        assertThat(irq.events()).containsExactly("1");
        // with the line high already, a write drops then re-raises it
        irq.clear();
        out(RBR_THR, 'z');
        assertThat(irq.events()).containsExactly("0", "1");
        out(IER, 0);
        assertThat(irq.level()).isFalse();
        assertThat(in(IIR_FCR)).isEqualTo(IIR_NO_INT);
    }

    @Test
    void receivedDataInterruptFollowsTheData() {
        out(IER, IER_RDI);
        assertThat(irq.events()).isEmpty();
        uart.enqueueInput("ab".getBytes(StandardCharsets.US_ASCII));
        assertThat(irq.level()).isTrue();
        assertThat(in(LSR) & LSR_DR).isEqualTo(LSR_DR);
        assertThat(in(IIR_FCR)).isEqualTo(IIR_RDI); // FIFO off: any byte is at the trigger level
        assertThat(in(RBR_THR)).isEqualTo('a');
        assertThat(irq.level()).isTrue(); // 'b' moved into the holding register
        assertThat(in(RBR_THR)).isEqualTo('b');
        assertThat(irq.level()).isFalse();
        assertThat(in(LSR) & LSR_DR).isZero();
        assertThat(in(IIR_FCR)).isEqualTo(IIR_NO_INT);
        assertThat(in(RBR_THR)).isZero(); // empty
        assertThat(irq.events()).containsExactly("1", "0");
    }

    @Test
    void rxInterruptDisabledMeansNoLineButDataReadable() {
        uart.enqueueInput(new byte[] {7});
        assertThat(irq.events()).isEmpty();
        assertThat(in(LSR) & LSR_DR).isEqualTo(LSR_DR);
        assertThat(in(RBR_THR)).isEqualTo(7);
        out(IER, IER_RDI);
        assertThat(irq.events()).isEmpty();
    }

    @Test
    void fifoSixteenBytesWithTriggerLevelAndTimeout() {
        out(IIR_FCR, 0xc7); // enable, clear both, trigger level 14
        assertThat(in(IIR_FCR) & 0xc0).isEqualTo(IIR_FIFO_ENABLED);
        out(IER, IER_RDI);
        byte[] data = new byte[40];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i + 1);
        }
        uart.enqueueInput(data);
        assertThat(in(IIR_FCR)).isEqualTo(IIR_FIFO_ENABLED | IIR_RDI);
        for (int i = 0; i < 30; i++) {
            assertThat(in(RBR_THR)).isEqualTo(i + 1);
        }
        // 10 bytes left, below the trigger level of 14: reported as a character timeout
        assertThat(in(IIR_FCR)).isEqualTo(IIR_FIFO_ENABLED | IIR_CTI);
        for (int i = 30; i < 40; i++) {
            assertThat(in(RBR_THR)).isEqualTo(i + 1);
        }
        assertThat(in(IIR_FCR)).isEqualTo(IIR_FIFO_ENABLED | IIR_NO_INT);
        assertThat(irq.level()).isFalse();
    }

    @Test
    void fifoResetDiscardsWhatTheFifoHolds() {
        out(IIR_FCR, 0x01);
        uart.enqueueInput(new byte[] {1, 2, 3});
        out(IIR_FCR, 0x03); // clear RX
        assertThat(in(LSR) & LSR_DR).isZero();
        out(IIR_FCR, 0x00); // FIFO off
        assertThat(in(IIR_FCR) & 0xc0).isZero();
    }

    @Test
    void linuxDetects16550aAnd16750() {
        // the 16550A test of autoconfig(): FCR enable, IIR bits 7:6 == 11
        out(IIR_FCR, 0x01);
        assertThat(in(IIR_FCR) >> 6).isEqualTo(3);
        // the 16750 test: bit 5 sticks only when written with DLAB set
        out(LCR, 0x80);
        out(IIR_FCR, 0x21);
        int status1 = in(IIR_FCR) & 0xe0;
        out(IIR_FCR, 0x01);
        out(LCR, 0x00);
        out(IIR_FCR, 0x21);
        int status2 = in(IIR_FCR) & 0xe0;
        assertThat(status1).isEqualTo(0xe0);
        assertThat(status2).isEqualTo(0xc0);
    }

    @Test
    void sixtyFourByteFifo() {
        out(LCR, 0x80);
        out(IIR_FCR, 0x21 | 0xc0); // 64-byte FIFO, trigger level 56
        out(LCR, 0x03);
        assertThat(in(IIR_FCR) & 0xe0).isEqualTo(0xe0);
        out(IER, IER_RDI);
        byte[] data = new byte[100];
        Arrays.fill(data, (byte) 'q');
        uart.enqueueInput(data);
        assertThat(in(IIR_FCR) & 0x0f).isEqualTo(IIR_RDI); // 64 >= 56
        for (int i = 0; i < 50; i++) {
            in(RBR_THR);
        }
        // each read refilled the FIFO from the 36 waiting bytes: 100 - 50 = 50 left, below 56
        assertThat(in(IIR_FCR) & 0x0f).isEqualTo(IIR_CTI);
        int n = 0;
        while ((in(LSR) & LSR_DR) != 0) {
            assertThat(in(RBR_THR)).isEqualTo('q');
            n++;
        }
        assertThat(n).isEqualTo(50);
    }

    @Test
    void loopbackSendsOutputToInputAndMirrorsModemLines() throws Exception {
        out(MCR, MCR_LOOP);
        // lines follow MCR (all 0 now); CTS, DSR and DCD dropped
        assertThat(in(MSR)).isEqualTo(MSR_DCTS | MSR_DDSR | MSR_DDCD);
        assertThat(in(MSR)).isZero(); // deltas clear on read
        out(MCR, MCR_LOOP | MCR_RTS);
        assertThat(in(MSR)).isEqualTo(MSR_CTS | MSR_DCTS);
        out(MCR, MCR_LOOP | MCR_RTS | MCR_DTR | MCR_OUT1 | MCR_OUT2);
        assertThat(in(MSR)).isEqualTo(MSR_CTS | MSR_DSR | MSR_RI | MSR_DCD | MSR_DDSR | MSR_DDCD);
        out(MCR, MCR_LOOP | MCR_RTS | MCR_DTR | MCR_OUT2);
        assertThat(in(MSR)).isEqualTo(MSR_CTS | MSR_DSR | MSR_DCD | MSR_TERI); // RI trailing edge
        out(RBR_THR, 'L');
        assertThat(in(LSR) & LSR_DR).isEqualTo(LSR_DR);
        assertThat(in(RBR_THR)).isEqualTo('L');
        // host input waits while looping back
        uart.enqueueInput(new byte[] {'h'});
        assertThat(in(LSR) & LSR_DR).isZero();
        out(MCR, 0);
        assertThat(in(RBR_THR)).isEqualTo('h');
        assertThat(output()).isEmpty();
    }

    @Test
    void interruptPriorityLineStatusThenDataThenThrThenModem() {
        out(MCR, MCR_LOOP);
        in(MSR);
        out(IER, IER_RDI | IER_THRI | IER_RLSI | IER_MSI);
        out(RBR_THR, 1);
        out(RBR_THR, 2); // FIFO off: one byte holds, the second overruns
        out(MCR, MCR_LOOP | MCR_RTS); // a modem status change too
        assertThat(in(IIR_FCR)).isEqualTo(IIR_RLSI);
        assertThat(in(LSR) & LSR_OE).isEqualTo(LSR_OE); // read clears OE
        assertThat(in(IIR_FCR)).isEqualTo(IIR_RDI);
        assertThat(in(RBR_THR)).isEqualTo(1);
        assertThat(in(IIR_FCR)).isEqualTo(IIR_THRI); // reading it clears THRI
        assertThat(in(IIR_FCR)).isEqualTo(IIR_MSI);
        assertThat(irq.level()).isTrue();
        in(MSR);
        assertThat(in(IIR_FCR)).isEqualTo(IIR_NO_INT);
        assertThat(irq.level()).isFalse();
    }

    @Test
    void enqueuedInputIsKeptUpToTheQueueBoundButAGuestFifoResetDiscardsTheFifo() {
        byte[] big = new byte[INPUT_QUEUE_CAPACITY];
        new Random(1).nextBytes(big);
        assertThat(uart.enqueueInput(big)).isTrue(); // one byte went into the holding register at once
        assertThat(uart.enqueueInput(new byte[] {1, 2})).as("one byte of room, two offered").isFalse();
        assertThat(uart.enqueueInput(new byte[] {3})).isTrue();
        out(IIR_FCR, 0x01); // enabling the FIFO resets it: the one byte in the holding register goes
        byte[] got = new byte[big.length];
        int n = 0;
        while ((in(LSR) & LSR_DR) != 0) {
            got[n++] = (byte) in(RBR_THR);
        }
        assertThat(n).isEqualTo(big.length);
        assertThat(Arrays.copyOf(got, n - 1)).isEqualTo(Arrays.copyOfRange(big, 1, big.length));
        assertThat(got[n - 1]).isEqualTo((byte) 3);
    }

    /** The case a guest printing to a stuck terminal creates: the vCPU waits for output room inside the UART. */
    @Test
    void enqueueInputDoesNotWaitForAVcpuHeldByFullOutput() throws Exception {
        uart.close();
        CountDownLatch open = new CountDownLatch(1);
        OutputStream stuck = new OutputStream() {
            @Override
            public void write(int b) {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) {
                try {
                    open.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
        uart = new Serial16550("serial-stuck", irq, null, stuck);
        out(IER, IER_RDI);
        Thread vcpu = new Thread(() -> {
            for (int i = 0; i < 100_000; i++) {
                out(RBR_THR, 'x');
            }
        }, "serial-stuck-vcpu");
        vcpu.start();
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (vcpu.getState() != Thread.State.WAITING && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
        assertThat(vcpu.getState()).as("the writer waits for output room").isEqualTo(Thread.State.WAITING);
        assertTimeoutPreemptively(Duration.ofSeconds(5), () -> assertThat(uart.enqueueInput(new byte[] {'k'})).isTrue());
        assertThat(irq.level()).as("no data-ready interrupt while the vCPU holds the UART").isFalse();

        open.countDown();
        vcpu.join(10_000);
        assertThat(vcpu.isAlive()).isFalse();
        // the thread that held the UART moved the byte in as it let go
        assertThat(irq.level()).isTrue();
        assertThat(in(LSR) & LSR_DR).isEqualTo(LSR_DR);
        assertThat(in(RBR_THR)).isEqualTo('k');
    }

    /** A guest that echoes every byte it receives, against a large input and a slow output stream. */
    @Test
    void largeInputThroughSlowOutputLosesNothing() throws Exception {
        uart.close();
        byte[] data = new byte[300_000];
        new Random(42).nextBytes(data);
        PipedOutputStream feeder = new PipedOutputStream();
        PipedInputStream input = new PipedInputStream(feeder, 4096);
        SlowStream slow = new SlowStream();
        uart = new Serial16550("serial-echo", irq, input, slow);
        out(IIR_FCR, 0xc7); // configure the FIFO before any byte arrives
        out(IER, IER_RDI);
        Thread producer = new Thread(() -> {
            try {
                for (int off = 0; off < data.length; off += 1000) {
                    feeder.write(data, off, Math.min(1000, data.length - off));
                }
                feeder.close();
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
        producer.start();
        int echoed = 0;
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (echoed < data.length && System.nanoTime() < deadline) {
            if ((in(LSR) & LSR_DR) != 0) {
                out(RBR_THR, in(RBR_THR));
                echoed++;
            } else {
                Thread.onSpinWait();
            }
        }
        producer.join();
        uart.drainOutput();
        assertThat(echoed).isEqualTo(data.length);
        assertThat(slow.bytes()).isEqualTo(data);
        assertThat(slow.maxChunk).isLessThanOrEqualTo(4096);
    }

    @Test
    void closeStopsTheInputThread() throws Exception {
        uart.close();
        PipedOutputStream feeder = new PipedOutputStream();
        PipedInputStream input = new PipedInputStream(feeder);
        uart = new Serial16550("serial-closing", irq, input, sink);
        feeder.write(new byte[] {1, 2, 3}); // the reader queues them, then waits in read() for more
        long deadline = System.nanoTime() + 30_000_000_000L;
        while ((in(LSR) & LSR_DR) == 0 && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        assertThat(in(LSR) & LSR_DR).as("the reader queued the bytes").isNotZero();
        assertThat(threadAlive("serial-closing-in")).isTrue();
        uart.close();
        assertThat(threadAlive("serial-closing-in")).isFalse();
        assertThat(threadAlive("serial-closing-out")).isFalse();
        // a closed device still answers, and ignores what it can no longer deliver
        out(RBR_THR, 'x');
        in(LSR);
    }

    @Test
    void slowOutputStreamHoldsTheGuestBackInsteadOfDropping() throws Exception {
        uart.close();
        SlowStream slow = new SlowStream();
        uart = new Serial16550("serial-slow", irq, null, slow);
        byte[] data = new byte[200_000];
        new Random(7).nextBytes(data);
        long start = System.nanoTime();
        for (byte b : data) {
            out(RBR_THR, b);
        }
        long elapsedMillis = (System.nanoTime() - start) / 1_000_000;
        uart.drainOutput();
        assertThat(slow.bytes()).isEqualTo(data);
        // 200 KB through a 64 KB buffer at 4 KB per 2 ms: the guest had to wait for the stream
        assertThat(elapsedMillis).isGreaterThanOrEqualTo(30);
    }

    @Test
    void closeFlushesPendingOutput() throws Exception {
        uart.close();
        SlowStream slow = new SlowStream();
        uart = new Serial16550("serial-flush", irq, null, slow);
        byte[] sent = new byte[10_000];
        for (int i = 0; i < sent.length; i++) {
            sent[i] = (byte) i;
            out(RBR_THR, i);
        }
        uart.close();
        assertThat(slow.bytes()).isEqualTo(sent);
    }

    private static boolean threadAlive(String name) {
        return Thread.getAllStackTraces().keySet().stream().anyMatch(t -> t.getName().equals(name) && t.isAlive());
    }

    /** An output stream that takes 2 ms per write call. */
    private static final class SlowStream extends OutputStream {
        private final ByteArrayOutputStream got = new ByteArrayOutputStream();
        volatile int maxChunk;

        @Override
        public synchronized void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) throws IOException {
            try {
                Thread.sleep(2);
            } catch (InterruptedException e) {
                throw new InterruptedIOException();
            }
            maxChunk = Math.max(maxChunk, len);
            got.write(b, off, len);
        }

        synchronized byte[] bytes() {
            return got.toByteArray();
        }
    }
}
