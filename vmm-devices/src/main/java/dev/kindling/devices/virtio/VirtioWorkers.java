package dev.kindling.devices.virtio;

import dev.kindling.sys.EventFd;
import dev.kindling.sys.Fd;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * The device threads of a {@link VirtioDevice}'s current activation, and the part of the device
 * lifecycle that is the same for every device: {@link #activate} stops the previous activation's
 * threads and starts the new ones (all or none), {@link #reset} stops them, {@link #quiesce} and
 * {@link #resume} park them, {@link #close} stops them for good. A thread whose body throws marks
 * the device DEVICE_NEEDS_RESET and is reported to the host program. Thread-safe.
 */
public final class VirtioWorkers {
    private static final System.Logger LOG = System.getLogger(VirtioWorkers.class.getName());

    private final String device;
    private final Duration wait;
    // guarded by this
    private List<VirtioWorker> running = List.of();
    /** Threads that did not stop in time: they may still use the queues, so no new activation until they end. */
    private final List<VirtioWorker> stuck = new ArrayList<>();
    private boolean closed;

    /** For the device named {@code device}, waiting {@link VirtioWorker#DEFAULT_WAIT} for a thread to stop. */
    public VirtioWorkers(String device) {
        this(device, VirtioWorker.DEFAULT_WAIT);
    }

    /** As {@link #VirtioWorkers(String)}, waiting {@code wait} for a run to return on stop and quiesce. */
    public VirtioWorkers(String device, Duration wait) {
        this.device = Objects.requireNonNull(device, "device");
        this.wait = Objects.requireNonNull(wait, "wait");
    }

    /** What {@link #activate}'s callback starts the activation's threads with. */
    public final class Activation {
        private final VirtioContext context;
        private final List<VirtioWorker> started = new ArrayList<>();

        private Activation(VirtioContext context) {
            this.context = context;
        }

        /** A thread named after {@code name} running {@code body} on each signal of {@code events}. */
        public VirtioWorker start(String name, List<EventFd> events, VirtioWorker.Body body) {
            Objects.requireNonNull(body, "body");
            return start(name, events, w -> body);
        }

        /** As {@link #start(String, List, VirtioWorker.Body)}, with a body that asks its worker {@link VirtioWorker#yieldAsked()}. */
        public VirtioWorker start(String name, List<EventFd> events, Function<VirtioWorker, VirtioWorker.Body> body) {
            return start(name, events, List.of(), body);
        }

        /** As {@link #start(String, List, Function)}, also woken while one of {@code watched} is readable (not read). */
        public VirtioWorker start(String name, List<EventFd> events, List<Fd> watched,
                Function<VirtioWorker, VirtioWorker.Body> body) {
            VirtioWorker w = VirtioWorker.start(name, context.threads(), events, watched, wait, body, this::failed);
            started.add(w);
            return w;
        }

        private void failed(String what, Throwable cause) {
            LOG.log(Level.ERROR, device + ": " + what, cause);
            try {
                context.needsReset(device + ": " + what + ": " + cause);
                context.reportFatal(device + ": " + what, cause);
            } catch (RuntimeException e) {
                LOG.log(Level.ERROR, device + ": could not report the failure", e);
            }
        }
    }

    /**
     * Stops the previous activation's threads, then runs {@code start}, which starts this one's. If
     * it throws, the threads it started are stopped again. Throws {@link IllegalStateException} once
     * closed.
     */
    public synchronized void activate(VirtioContext context, Consumer<Activation> start) {
        if (closed) {
            throw new IllegalStateException(device + " is closed");
        }
        stopAll();
        stuck.removeIf(VirtioWorker::ended);
        if (!stuck.isEmpty()) {
            throw new IllegalStateException(device + ": a thread of the previous activation is still running;"
                    + " the queues cannot be served again until it ends");
        }
        Activation a = new Activation(context);
        try {
            start.accept(a);
        } catch (RuntimeException | Error e) {
            a.started.forEach(VirtioWorker::stop);
            throw e;
        }
        running = List.copyOf(a.started);
    }

    /** Stops the threads (each after its current request) and joins them. */
    public synchronized void reset() {
        stopAll();
    }

    public synchronized void quiesce() {
        running.forEach(VirtioWorker::quiesce);
    }

    public synchronized void resume() {
        running.forEach(VirtioWorker::resume);
    }

    /** Whether {@link #close()} was called. */
    public synchronized boolean closed() {
        return closed;
    }

    /** Stops the threads for good: a later {@link #activate} throws. Returns false if it was closed already. */
    public synchronized boolean close() {
        if (closed) {
            return false;
        }
        closed = true;
        stopAll();
        return true;
    }

    private void stopAll() {
        List<VirtioWorker> r = running;
        running = List.of();
        for (VirtioWorker w : r) {
            if (!w.stop()) {
                stuck.add(w);
            }
        }
    }
}
