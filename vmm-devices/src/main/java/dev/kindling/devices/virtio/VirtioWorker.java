package dev.kindling.devices.virtio;

import dev.kindling.sys.Epoll;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ThreadFactory;
import java.util.function.Function;

/**
 * A device thread: runs a {@link Body} whenever one of its eventfds (queue notifiers, a device's own
 * wake-ups) is signalled, or when the body's timeout passes. {@link #stop()} ends it and joins it,
 * {@link #quiesce()} parks it between two runs; a body that serves many requests in one run asks
 * {@link #yieldAsked()} between two of them, so that a stop or pause waits for one request only.
 * What the body throws is reported once and the thread then idles until stopped, so a device bug
 * neither spins nor dies silently. The wait is one epoll set and one read buffer made at start: a
 * wake-up allocates nothing.
 */
public final class VirtioWorker {
    private static final System.Logger LOG = System.getLogger(VirtioWorker.class.getName());
    /** How long stop() and quiesce() wait by default for a body that does not return. */
    public static final Duration DEFAULT_WAIT = Duration.ofSeconds(10);

    /** One round of work. */
    @FunctionalInterface
    public interface Body {
        /**
         * Serves what is ready. Returns how many milliseconds to wait at most before the next round
         * when no eventfd is signalled (a rate limit's refill), or -1 to wait for a signal only.
         */
        int serve();

        /** Runs on the thread as it ends (or in {@code start} if it never ran): frees what only the body used. */
        default void ended() {}
    }

    private final Thread thread;
    private final long waitNanos;
    /** Set before the thread starts. */
    private Body body;
    private final List<EventFd> events;
    /** Level-triggered: the body must consume (or stop watching) what made them readable. */
    private final List<Fd> watched;
    private final EventFd control = EventFd.nonBlocking();
    /** Token {@code i + 1} is {@code events.get(i)}; token 0 is {@link #control}. */
    private final Epoll epoll;
    /** The thread's buffer for eventfd reads; freed when the thread ends. */
    private final Arena arena = Arena.ofShared();
    private final MemorySegment counter = arena.allocate(ValueLayout.JAVA_LONG);
    private final FatalHandler onFatal;

    // guarded by this
    private boolean stopping;
    private boolean paused;
    private boolean parked;
    private boolean ended;

    /** What the worker does with an exception its body threw: the device's context reportFatal. */
    @FunctionalInterface
    public interface FatalHandler {
        void report(String what, Throwable cause);
    }

    private VirtioWorker(String name, ThreadFactory threads, List<EventFd> events, List<Fd> watched, Duration wait,
            FatalHandler onFatal) {
        this.waitNanos = wait.toNanos();
        this.onFatal = onFatal;
        this.events = List.copyOf(events);
        this.watched = List.copyOf(watched);
        Epoll set = null;
        try {
            set = Epoll.create(this.events.size() + this.watched.size() + 1);
            set.add(control.fd(), Epoll.EPOLLIN, 0);
            for (int i = 0; i < this.events.size(); i++) {
                set.add(this.events.get(i).fd(), Epoll.EPOLLIN, i + 1);
            }
            for (int i = 0; i < this.watched.size(); i++) {
                set.add(this.watched.get(i), Epoll.EPOLLIN, this.events.size() + i + 1);
            }
            this.thread = threads.newThread(this::run);
            thread.setName(thread.getName() + "-" + name);
        } catch (RuntimeException | Error e) {
            if (set != null) {
                set.close();
            }
            control.close();
            arena.close();
            throw e;
        }
        this.epoll = set;
    }

    /**
     * Starts a thread made by {@code threads} (its name gets {@code -name} appended) that runs
     * {@code body} once at once, then each time one of {@code events} (non-blocking eventfds, which it
     * reads to clear) or {@link #wake()} signals it.
     */
    public static VirtioWorker start(String name, ThreadFactory threads, List<EventFd> events, Body body, FatalHandler onFatal) {
        Objects.requireNonNull(body, "body");
        return start(name, threads, events, DEFAULT_WAIT, w -> body, onFatal);
    }

    /**
     * As {@link #start(String, ThreadFactory, List, Body, FatalHandler)}, with the body made from the
     * worker (to ask {@link #yieldAsked()}), and {@code wait}: how long {@link #stop()} and
     * {@link #quiesce()} wait for a run to return before they give up and log it.
     */
    public static VirtioWorker start(String name, ThreadFactory threads, List<EventFd> events, Duration wait,
            Function<VirtioWorker, Body> body, FatalHandler onFatal) {
        return start(name, threads, events, List.of(), wait, body, onFatal);
    }

    /**
     * As {@link #start(String, ThreadFactory, List, Duration, Function, FatalHandler)}, also running
     * the body while any of {@code watched} is readable (a backend's socket or tap, a device's own
     * epoll set of connections). Those are not read: the body consumes what made them readable, or the
     * thread spins.
     */
    public static VirtioWorker start(String name, ThreadFactory threads, List<EventFd> events, List<Fd> watched,
            Duration wait, Function<VirtioWorker, Body> body, FatalHandler onFatal) {
        Objects.requireNonNull(body, "body");
        Objects.requireNonNull(onFatal, "onFatal");
        VirtioWorker w = null;
        boolean started = false;
        try {
            w = new VirtioWorker(name, threads, events, watched, wait, onFatal);
            w.body = Objects.requireNonNull(body.apply(w), "body");
            w.thread.start();
            started = true;
        } catch (RuntimeException | Error e) {
            if (w != null) {
                if (w.body != null && !started) {
                    w.body.ended();
                }
                w.release();
            }
            throw e;
        }
        return w;
    }

    /** Whether the thread has ended (after a stop, or never started). */
    public synchronized boolean ended() {
        return ended;
    }

    /** True once a stop or a pause is asked: a body returns before its next request (it runs again after a resume). */
    public synchronized boolean yieldAsked() {
        return stopping || paused;
    }

    /** Makes the body run again soon (new input for it). Callable from any thread, any number of times. */
    public void wake() {
        synchronized (this) {
            if (ended) {
                return;
            }
            control.signal();
        }
    }

    private void run() {
        int timeout = -1;
        boolean idle = false;
        try {
            while (true) {
                // cleared before the flags are looked at, so a stop() or wake() after this stays
                // signalled for the poll below
                clear(control);
                synchronized (this) {
                    while (paused && !stopping) {
                        parked = true;
                        notifyAll();
                        wait();
                    }
                    parked = false;
                    if (stopping) {
                        return;
                    }
                }
                for (EventFd e : events) {
                    clear(e);
                }
                if (!idle) {
                    try {
                        timeout = body.serve();
                    } catch (RuntimeException | Error e) {
                        idle = true;
                        timeout = -1;
                        for (EventFd ev : events) {
                            epoll.remove(ev.fd()); // only a stop or a quiesce matters now
                        }
                        for (Fd fd : watched) {
                            epoll.remove(fd);
                        }
                        onFatal.report(thread.getName() + " failed and stops serving until the device is reset", e);
                    }
                }
                epoll.wait(timeout);
            }
        } catch (InterruptedException e) {
            // stop() does not interrupt; someone else did: end like a stop
        } finally {
            try {
                body.ended();
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, thread.getName() + ": freeing the body's resources failed", e);
            }
            synchronized (this) {
                ended = true;
                notifyAll();
            }
        }
    }

    /** Resets a non-blocking eventfd's counter, into the thread's own buffer. */
    private void clear(EventFd e) {
        Libc.read(e.fd(), counter, 8);
    }

    private void release() {
        if (!arena.scope().isAlive()) {
            return;
        }
        epoll.close();
        control.close();
        arena.close();
    }

    /**
     * Parks the thread after its current round: returns once it is parked (it touches no guest memory
     * then) or has ended.
     */
    public void quiesce() {
        synchronized (this) {
            paused = true;
            if (!ended) {
                control.signal();
            }
            long deadline = System.nanoTime() + waitNanos;
            while (!parked && !ended) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    LOG.log(Level.WARNING, thread.getName() + " did not stop for a pause within " + waitNanos / 1_000_000 + " ms");
                    return;
                }
                try {
                    wait(left / 1_000_000 + 1);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    public void resume() {
        synchronized (this) {
            paused = false;
            notifyAll();
        }
    }

    /**
     * Ends the thread after its current round and joins it, then frees its epoll set and eventfd;
     * idempotent. Returns whether the thread has ended: one that did not within the wait (a hung
     * backend) is left running with what it holds, and logged.
     */
    public boolean stop() {
        synchronized (this) {
            stopping = true;
            if (!ended) {
                control.signal();
            }
            notifyAll();
        }
        if (thread == Thread.currentThread()) {
            return false;
        }
        boolean interrupted = false;
        long deadline = System.nanoTime() + waitNanos;
        while (thread.isAlive()) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                LOG.log(Level.ERROR, thread.getName() + " did not end within " + waitNanos / 1_000_000 + " ms; left running");
                break;
            }
            try {
                thread.join(left / 1_000_000 + 1);
            } catch (InterruptedException e) {
                interrupted = true; // the join must still happen: the caller relies on the thread being gone
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        synchronized (this) {
            if (ended) {
                release();
            }
            return ended;
        }
    }
}
