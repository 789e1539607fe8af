package dev.kindling.devices.legacy;

import dev.kindling.device.Threads;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * Carries a device's output bytes to an {@link OutputStream} on a daemon thread, through a bounded
 * buffer. The producer (a vCPU thread) only waits when the buffer is full, so a slow sink slows the
 * guest down instead of losing bytes. The stream is flushed whenever the buffer runs empty.
 */
final class OutputPump implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(OutputPump.class.getName());
    /** How long {@link #close()} lets the thread drain what is left before giving up on a stuck sink. */
    private static final long CLOSE_DRAIN_MILLIS = 5_000;

    private record Waiter(long upTo, Runnable action) {}

    private final OutputStream sink;
    private final ByteRing buffer;
    private final Thread thread;
    // guarded by this
    private boolean closed;
    private boolean failed;
    private boolean finished;
    /** Bytes taken by the thread and not yet written and flushed. */
    private int inFlight;
    private long queued;
    private long delivered;
    private final List<Waiter> waiters = new ArrayList<>();

    OutputPump(String name, OutputStream sink, int capacity) {
        this.sink = sink;
        this.buffer = new ByteRing(Math.min(capacity, 256), capacity);
        this.thread = LegacyIo.daemon(name, this::run);
    }

    /** Queues one byte, waiting while the buffer is full. Returns at once if the pump is closed. */
    synchronized void put(int b) {
        while (!closed && !failed && buffer.room() == 0) {
            try {
                wait();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
        if (closed || failed) {
            return;
        }
        buffer.push(b);
        queued++;
        notifyAll();
    }

    /** Waits until every queued byte has been written and flushed (or the sink failed). */
    synchronized void drain() throws InterruptedException {
        while (!failed && (!buffer.isEmpty() || inFlight > 0) && thread.isAlive()) {
            wait(100);
        }
    }

    /**
     * Runs {@code action} once every byte queued so far has been written to the stream, or the pump
     * has given up (the stream failed, or it was closed): at once on the calling thread if that is
     * already so, else on the pump's thread. Never blocks.
     */
    void whenDrained(Runnable action) {
        synchronized (this) {
            if (!finished && delivered < queued) {
                waiters.add(new Waiter(queued, action));
                return;
            }
        }
        action.run();
    }

    private void run() {
        try {
            pump();
        } finally {
            List<Runnable> left;
            synchronized (this) {
                finished = true;
                left = waiters.stream().map(Waiter::action).toList();
                waiters.clear();
                notifyAll();
            }
            left.forEach(OutputPump::runQuietly);
        }
    }

    private void pump() {
        byte[] chunk = new byte[4096];
        while (true) {
            int n;
            synchronized (this) {
                while (buffer.isEmpty() && !closed) {
                    try {
                        wait();
                    } catch (InterruptedException e) {
                        // close() interrupts only after the drain deadline: stop now
                        return;
                    }
                }
                if (buffer.isEmpty()) {
                    return; // closed and drained
                }
                n = buffer.pop(chunk, 0, chunk.length);
                inFlight = n;
                notifyAll();
            }
            boolean ok = write(chunk, n);
            List<Runnable> due = new ArrayList<>();
            synchronized (this) {
                inFlight = 0;
                if (!ok) {
                    failed = true;
                    buffer.clear();
                    notifyAll();
                    return;
                }
                delivered += n;
                for (Iterator<Waiter> it = waiters.iterator(); it.hasNext(); ) {
                    Waiter w = it.next();
                    if (w.upTo() <= delivered) {
                        due.add(w.action());
                        it.remove();
                    }
                }
                notifyAll();
            }
            due.forEach(OutputPump::runQuietly);
        }
    }

    private static void runQuietly(Runnable action) {
        try {
            action.run();
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "an action waiting for output to drain failed", e);
        }
    }

    private boolean write(byte[] chunk, int n) {
        try {
            sink.write(chunk, 0, n);
            boolean more;
            synchronized (this) {
                more = !buffer.isEmpty();
            }
            if (!more) {
                sink.flush();
            }
            return true;
        } catch (IOException e) {
            LOG.log(Level.WARNING, "output stream failed, further output is discarded: " + e);
            return false;
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "output stream failed, further output is discarded", e);
            return false;
        }
    }

    /**
     * Stops accepting bytes, lets the thread write what is queued (bounded wait), then stops it.
     * Called on the pump's own thread (from an action given to {@link #whenDrained}), it does not wait.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            notifyAll();
        }
        if (Thread.currentThread() == thread) {
            return;
        }
        Threads.join(thread, Duration.ofMillis(CLOSE_DRAIN_MILLIS));
        if (thread.isAlive()) {
            LOG.log(Level.WARNING, "output stream did not take the last bytes in time; abandoning them");
            thread.interrupt();
            Threads.join(thread, Duration.ofSeconds(1));
        }
    }
}
