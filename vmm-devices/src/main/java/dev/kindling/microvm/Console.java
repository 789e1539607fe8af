package dev.kindling.microvm;

import static java.nio.charset.StandardCharsets.UTF_8;

import dev.kindling.devices.legacy.Serial16550;
import dev.kindling.devices.virtio.console.VirtioConsole;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.MatchResult;
import java.util.regex.Pattern;

/**
 * The guest's console: what it wrote on the serial port and on the virtio console port that
 * {@link MicrovmBuilder#virtioConsole()} adds, kept in memory (the last {@link #CAPACITY} bytes) and
 * passed on to the stream given to {@link MicrovmBuilder#serialOutput}, and the way to type to it
 * ({@link #send}). A read-only view of the output: only those devices write it.
 *
 * <p>Output decodes as UTF-8 (malformed bytes become U+FFFD). Waits ({@link #awaitText}) search only
 * what arrived since they last looked, and return early, unmatched, once the guest has ended and all
 * its output has been searched.
 */
public final class Console {
    public static final int CAPACITY = 1 << 20;
    /** {@link #awaitText(Pattern, Duration)} matches lines up to this long; longer ones in pieces of it. */
    public static final int MAX_LINE = 64 * 1024;

    private static final System.Logger LOG = System.getLogger(Console.class.getName());

    /** Where {@link #send} puts bytes: a device's input queue of {@code capacity} bytes. */
    private record Input(String device, Predicate<byte[]> offer, int capacity) {}

    private volatile Input input;
    private final OutputStream sink = new Sink();
    private final List<Follower> followers = new CopyOnWriteArrayList<>();
    /** Touched only by the thread that delivers output, one at a time (under the sink's lock). */
    private OutputStream forward;

    // guarded by this
    /** Grows up to {@link #CAPACITY} as output arrives, so a quiet guest costs little memory. */
    private byte[] ring = new byte[4096];
    private long written;
    private boolean ended;

    /** A console whose output also goes to {@code forward} (if not null). */
    Console(OutputStream forward) {
        this.forward = forward;
    }

    /** Makes {@link #send} type to {@code serial}; without a connected device, a machine has no console input. */
    void connect(Serial16550 serial) {
        input = new Input("serial", serial::enqueueInput, Serial16550.INPUT_QUEUE_CAPACITY);
    }

    /** Makes {@link #send} type to the virtio console {@code port}. */
    void connect(VirtioConsole port) {
        input = new Input("virtio console", port::enqueueInput, VirtioConsole.INPUT_BUFFER);
    }

    /** What the console devices write the guest's output to; writes from several devices are serialized. */
    OutputStream sink() {
        return sink;
    }

    /** No more output will come: waits that have searched everything give up. */
    synchronized void end() {
        ended = true;
        notifyAll();
    }

    // ---- input

    /**
     * Types {@code bytes} to the guest: to its serial port, or on a microVM without one, to the virtio
     * console port of {@link MicrovmBuilder#virtioConsole()} ({@code hvc0}). Never blocks: the bytes
     * wait in the device's queue ({@link Serial16550#INPUT_QUEUE_CAPACITY} bytes for the serial port,
     * {@link VirtioConsole#INPUT_BUFFER} for the virtio console) until the guest reads them. Dropped
     * once the microVM is closed.
     *
     * @throws IllegalStateException if the queue has no room for all of them (none is queued then),
     *     or the microVM has neither console device
     */
    public void send(byte[] bytes) {
        Objects.requireNonNull(bytes, "bytes");
        Input in = input;
        if (in == null) {
            throw new IllegalStateException("this microVM has no console input: no ISA serial port and no virtioConsole()");
        }
        if (!in.offer().test(bytes)) {
            throw new IllegalStateException(in.device() + " input queue is full: the guest has not read the last "
                    + in.capacity() + " bytes yet");
        }
    }

    /** Types {@code text} as UTF-8; see {@link #send(byte[])}. */
    public void send(String text) {
        send(text.getBytes(UTF_8));
    }

    // ---- output

    /** Everything kept so far (the last {@link #CAPACITY} bytes). */
    public String text() {
        byte[] bytes;
        synchronized (this) {
            bytes = copy(oldest(), written);
        }
        return new String(bytes, UTF_8);
    }

    /**
     * Waits until the output kept shows {@code marker}; false if the timeout passes first, or the guest
     * ended without writing it.
     */
    public boolean awaitText(String marker, Duration timeout) throws InterruptedException {
        byte[] m = marker.getBytes(UTF_8);
        if (m.length == 0) {
            return true;
        }
        long deadline = deadline(timeout);
        long from = 0;
        while (true) {
            Chunk c = next(from, from - (m.length - 1), deadline);
            if (c == null) {
                return false;
            }
            if (indexOf(c.bytes(), m) >= 0) {
                return true;
            }
            from = c.end();
        }
    }

    /**
     * Waits until a line of the output kept matches {@code pattern} ({@link Matcher#find()} within one
     * line, without its line end; the line being written counts, so a prompt is found before its
     * newline). Empty if the timeout passes first, or the guest ended without such a line.
     */
    public Optional<MatchResult> awaitText(Pattern pattern, Duration timeout) throws InterruptedException {
        long deadline = deadline(timeout);
        long lineStart = 0;
        long from = 0;
        while (true) {
            Chunk c = next(from, lineStart, deadline);
            if (c == null) {
                return Optional.empty();
            }
            byte[] b = c.bytes();
            int pos = 0;
            for (int i = (int) Math.max(0, from - c.start()); i < b.length; i++) {
                if (b[i] == '\n' || i - pos == MAX_LINE) {
                    Optional<MatchResult> r = match(pattern, b, pos, i);
                    if (r.isPresent()) {
                        return r;
                    }
                    pos = b[i] == '\n' ? i + 1 : i;
                }
            }
            Optional<MatchResult> r = match(pattern, b, pos, b.length);
            if (r.isPresent()) {
                return r;
            }
            lineStart = c.start() + pos;
            from = c.end();
        }
    }

    private static Optional<MatchResult> match(Pattern pattern, byte[] b, int from, int to) {
        int end = to > from && b[to - 1] == '\r' ? to - 1 : to;
        Matcher m = pattern.matcher(new String(b, from, end - from, UTF_8));
        return m.find() ? Optional.of(m.toMatchResult()) : Optional.empty();
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    /**
     * Calls {@code onText} with everything kept so far, then with each piece of output as it arrives,
     * until the subscription is closed. The first call runs on the calling thread, later ones on the
     * thread that delivers the guest's output, one at a time and in order: a slow consumer slows the
     * guest's output, as a slow output stream does. A consumer that throws is unsubscribed.
     */
    public Subscription follow(Consumer<String> onText) {
        Follower f = new Follower(Objects.requireNonNull(onText, "onText"));
        followers.add(f);
        f.catchUp();
        return f;
    }

    /** A live view of the output; closing it stops the calls. */
    public interface Subscription extends AutoCloseable {
        @Override
        void close();
    }

    // ---- the ring

    private record Chunk(long start, byte[] bytes) {
        long end() {
            return start + bytes.length;
        }
    }

    private static long deadline(Duration timeout) {
        return System.nanoTime() + timeout.toNanos();
    }

    /**
     * Waits until output beyond {@code beyond} exists, then returns the bytes from {@code start} (or
     * the oldest kept) to the newest; null on timeout, or once the output has ended with nothing beyond.
     */
    private synchronized Chunk next(long beyond, long start, long deadline) throws InterruptedException {
        while (written <= beyond) {
            long left = deadline - System.nanoTime();
            if (ended || left <= 0) {
                return null;
            }
            TimeUnit.NANOSECONDS.timedWait(this, left);
        }
        long from = Math.max(start, oldest());
        return new Chunk(from, copy(from, written));
    }

    /** Position of the oldest byte kept. */
    private long oldest() {
        return written - Math.min(written, ring.length);
    }

    /** Bytes {@code [from, to)}, all kept. */
    private byte[] copy(long from, long to) {
        byte[] out = new byte[(int) (to - from)];
        int at = (int) (from % ring.length);
        int first = Math.min(out.length, ring.length - at);
        System.arraycopy(ring, at, out, 0, first);
        System.arraycopy(ring, 0, out, first, out.length - first);
        return out;
    }

    private void append(byte[] b, int off, int len) {
        store(b, off, len);
        if (forward != null) {
            try {
                forward.write(b, off, len);
            } catch (IOException | RuntimeException e) {
                forwardFailed(e);
            }
        }
        for (Follower f : followers) {
            f.catchUp();
        }
    }

    private synchronized void store(byte[] b, int off, int len) {
        if (written + len > ring.length && ring.length < CAPACITY) {
            // still linear: the ring only wraps once it has its full size
            ring = Arrays.copyOf(ring, (int) Math.min(CAPACITY, Math.max(2L * ring.length, written + len)));
        }
        int skip = Math.max(0, len - ring.length); // a chunk larger than the ring: only its end is kept
        written += skip;
        int n = len - skip;
        int at = (int) (written % ring.length);
        int first = Math.min(n, ring.length - at);
        System.arraycopy(b, off + skip, ring, at, first);
        System.arraycopy(b, off + skip + first, ring, 0, n - first);
        written += n;
        notifyAll();
    }

    private void forwardFailed(Exception e) {
        LOG.log(Level.WARNING, "the serial output stream failed; the console keeps the output, the stream gets no more: " + e);
        forward = null;
    }

    private final class Sink extends OutputStream {
        @Override
        public synchronized void write(int b) {
            append(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) {
            Objects.checkFromIndexSize(off, len, b.length);
            append(b, off, len);
        }

        @Override
        public synchronized void flush() {
            if (forward != null) {
                try {
                    forward.flush();
                } catch (IOException | RuntimeException e) {
                    forwardFailed(e);
                }
            }
        }
    }

    private final class Follower implements Subscription {
        private final Consumer<String> consumer;
        private final CharsetDecoder decoder = UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPLACE).onUnmappableCharacter(CodingErrorAction.REPLACE);
        /** Guarded by this follower: the first byte not yet delivered, and a character cut at the end. */
        private long position;
        private byte[] carry = new byte[0];
        private volatile boolean closed;

        Follower(Consumer<String> consumer) {
            this.consumer = consumer;
        }

        /** Delivers what arrived since the last call; serialized, so pieces arrive in order. */
        synchronized void catchUp() {
            if (closed) {
                return;
            }
            byte[] bytes;
            synchronized (Console.this) {
                long from = Math.max(position, oldest());
                bytes = copy(from, written);
                position = written;
            }
            String text = decode(bytes);
            if (text.isEmpty()) {
                return;
            }
            try {
                consumer.accept(text);
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "a console follower failed and is unsubscribed", e);
                close();
            }
        }

        private String decode(byte[] bytes) {
            ByteBuffer in = ByteBuffer.allocate(carry.length + bytes.length).put(carry).put(bytes).flip();
            CharBuffer out = CharBuffer.allocate(in.remaining() + 1);
            decoder.decode(in, out, false);
            carry = new byte[in.remaining()];
            in.get(carry);
            return out.flip().toString();
        }

        @Override
        public void close() {
            closed = true;
            followers.remove(this);
        }
    }
}
