package dev.kindling.devices.virtio.blk;

import dev.kindling.devices.virtio.VirtioContext;
import dev.kindling.devices.virtio.blk.BlkRequest.Discard;
import dev.kindling.devices.virtio.blk.BlkRequest.Flush;
import dev.kindling.devices.virtio.blk.BlkRequest.GetId;
import dev.kindling.devices.virtio.blk.BlkRequest.Limits;
import dev.kindling.devices.virtio.blk.BlkRequest.Range;
import dev.kindling.devices.virtio.blk.BlkRequest.Read;
import dev.kindling.devices.virtio.blk.BlkRequest.Rejected;
import dev.kindling.devices.virtio.blk.BlkRequest.Write;
import dev.kindling.devices.virtio.blk.BlkRequest.WriteZeroes;
import dev.kindling.devices.virtio.queue.Descriptor;
import dev.kindling.devices.virtio.queue.DescriptorChain;
import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.devices.virtio.queue.VirtqueueException;
import dev.kindling.memory.GuestMemory;
import dev.kindling.sys.Epoll;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.IoVec;
import dev.kindling.sys.SyscallException;
import java.lang.System.Logger.Level;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * The I/O thread of one activated {@link VirtioBlk}: waits on the queue's notifier and a control
 * eventfd with epoll, drains the queue with driver notifications off, turns them on again and checks
 * once more before sleeping, and interrupts the driver once per batch. Stop and pause take effect
 * between requests, so a request the used ring acknowledges has completed in the image.
 *
 * <p>A malformed chain or request fails that request; a broken ring or an unexpected failure marks
 * the device DEVICE_NEEDS_RESET and the thread serves nothing more until stopped. A backend I/O error
 * fails the request with IOERR and is reported to the host program once.
 */
final class BlkWorker {
    private static final System.Logger LOG = System.getLogger(BlkWorker.class.getName());
    private static final long NOTIFIER = 0, CONTROL = 1;
    /** How long stop() and quiesce() wait for a request to complete: only a hung backend takes longer. */
    private static final long WAIT_NANOS = 60_000_000_000L;

    private final String name;
    private final VirtioContext context;
    private final GuestMemory memory;
    private final Virtqueue queue;
    private final EventFd notifier;
    private final DiskImage image;
    private final Limits limits;
    private final byte[] id;
    private final boolean writeThrough;
    private final Epoll epoll;
    private final EventFd control;
    private final IoVec.Array iov;
    private final MemorySegment[] buffers;
    private final Thread thread;

    // guarded by this
    private boolean stopping;
    private boolean paused;
    private boolean parked;
    private boolean ended;

    /** Set once the device must be reset: serve nothing more. Thread-confined. */
    private boolean broken;
    private boolean backendErrorReported;

    private BlkWorker(String name, VirtioContext context, DiskImage image, Limits limits, byte[] id, boolean writeThrough,
            Epoll epoll, EventFd control, IoVec.Array iov) {
        this.name = name;
        this.context = context;
        this.memory = context.memory();
        this.queue = context.queues().getFirst();
        this.notifier = context.queueNotifier(0);
        this.image = image;
        this.limits = limits;
        this.id = id;
        this.writeThrough = writeThrough;
        this.epoll = epoll;
        this.control = control;
        this.iov = iov;
        this.buffers = new MemorySegment[limits.config().segMax()];
        this.thread = context.threads().newThread(this::run);
    }

    static BlkWorker start(String name, VirtioContext context, DiskImage image, Limits limits, byte[] id, boolean writeThrough) {
        Epoll epoll = null;
        EventFd control = null;
        IoVec.Array iov = null;
        try {
            epoll = Epoll.create(2);
            control = EventFd.nonBlocking();
            iov = new IoVec.Array(limits.config().segMax());
            BlkWorker w = new BlkWorker(name, context, image, limits, id, writeThrough, epoll, control, iov);
            epoll.add(w.notifier.fd(), Epoll.EPOLLIN, NOTIFIER);
            epoll.add(control.fd(), Epoll.EPOLLIN, CONTROL);
            w.thread.start();
            return w;
        } catch (RuntimeException | Error e) {
            closeAll(epoll, control, iov);
            throw e;
        }
    }

    private static void closeAll(AutoCloseable... resources) {
        for (AutoCloseable r : resources) {
            if (r != null) {
                try {
                    r.close();
                } catch (Exception e) {
                    LOG.log(Level.WARNING, "closing " + r + " failed", e);
                }
            }
        }
    }

    private void run() {
        try {
            // Served once at start: chains made available before the driver set DRIVER_OK are not lost.
            while (idle()) {
                notifier.read();
                control.read();
                if (!broken) {
                    drain();
                }
                // A stop or pause whose signal was read above is seen here, not slept through.
                if (!interrupted()) {
                    epoll.wait(-1);
                }
            }
        } catch (RuntimeException | Error e) {
            fail("the I/O thread failed", e);
        } finally {
            synchronized (this) {
                ended = true;
                notifyAll();
            }
        }
    }

    /** Between requests: parks while paused; false once stopping. */
    private synchronized boolean idle() {
        boolean interrupted = false;
        while (paused && !stopping) {
            parked = true;
            notifyAll();
            try {
                wait();
            } catch (InterruptedException e) {
                interrupted = true; // only stop() ends the thread
            }
        }
        parked = false;
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        return !stopping;
    }

    private synchronized boolean interrupted() {
        return stopping || paused;
    }

    /** Serves chains until the ring is empty with notifications on, or a stop or pause is asked. */
    private void drain() {
        while (true) {
            queue.setNotificationsEnabled(memory, false);
            int served = 0;
            // A batch is at most one ring's worth, so the driver hears of completions while it keeps the queue full.
            while (served < queue.size() && !interrupted()) {
                Optional<DescriptorChain> chain;
                try {
                    chain = queue.pop(memory);
                } catch (VirtqueueException.InvalidChain e) {
                    LOG.log(Level.DEBUG, () -> name + ": " + e.getMessage());
                    queue.addUsed(memory, e.head(), 0);
                    served++;
                    continue;
                } catch (VirtqueueException.BrokenQueue e) {
                    if (served > 0) {
                        context.signalUsed(0);
                    }
                    broken = true;
                    context.needsReset(name + ": " + e.getMessage());
                    return;
                } catch (VirtqueueException e) {
                    throw new IllegalStateException(e);
                }
                if (chain.isEmpty()) {
                    break;
                }
                serve(chain.get());
                served++;
            }
            if (served > 0) {
                context.signalUsed(0);
            }
            if (interrupted()) {
                return;
            }
            if (served < queue.size() && !queue.setNotificationsEnabled(memory, true)) {
                return;
            }
        }
    }

    private void serve(DescriptorChain chain) {
        BlkRequest request = BlkRequest.parse(chain, memory, limits);
        long written = 0;
        int status;
        long statusAt;
        switch (request) {
            case Rejected r -> {
                LOG.log(Level.DEBUG, () -> name + ": request at head " + r.head() + " refused: " + r.reason());
                if (r.statusAddress().isEmpty()) {
                    queue.addUsed(memory, r.head(), 0);
                    return;
                }
                status = r.status();
                statusAt = r.statusAddress().getAsLong();
            }
            case Read r -> {
                statusAt = r.status();
                long n = io(() -> image.read(segments(r.data()), r.data().size(), r.length(), offset(r.sector()), iov));
                written = Math.max(n, 0);
                status = n == r.length() ? BlkAbi.S_OK : BlkAbi.S_IOERR;
                if (n >= 0 && n < r.length()) {
                    backendError("read of " + r.length() + " bytes at sector " + r.sector() + " ended after " + n
                            + " bytes: the image is shorter than when it was opened", null);
                }
            }
            case Write w -> {
                statusAt = w.status();
                long n = io(() -> {
                    long done = image.write(segments(w.data()), w.data().size(), w.length(), offset(w.sector()), iov);
                    if (writeThrough && done == w.length()) {
                        image.flush();
                    }
                    return done;
                });
                status = n == w.length() ? BlkAbi.S_OK : BlkAbi.S_IOERR;
                if (n >= 0 && n < w.length()) {
                    backendError("write of " + w.length() + " bytes at sector " + w.sector() + " ended after " + n + " bytes", null);
                }
            }
            case Flush f -> {
                statusAt = f.status();
                status = io(() -> {
                    image.flush();
                    return 0;
                }) == 0 ? BlkAbi.S_OK : BlkAbi.S_IOERR;
            }
            case GetId g -> {
                statusAt = g.status();
                int n = (int) Math.min(g.length(), id.length);
                byte[] answer = id.length == n ? id : Arrays.copyOf(id, n);
                Buffers.write(memory, g.buffer(), answer);
                written = n;
                status = BlkAbi.S_OK;
            }
            case Discard d -> {
                statusAt = d.status();
                // 1: the image cannot discard (UNSUPP), -1: it failed (IOERR)
                long r = io(() -> {
                    for (Range range : d.ranges()) {
                        if (range.sectors() != 0 && !image.discard(range.offset(), range.byteLength())) {
                            return 1;
                        }
                    }
                    return 0;
                });
                status = r == 0 ? BlkAbi.S_OK : r == 1 ? BlkAbi.S_UNSUPP : BlkAbi.S_IOERR;
            }
            case WriteZeroes z -> {
                statusAt = z.status();
                status = io(() -> {
                    for (Range range : z.ranges()) {
                        if (range.sectors() != 0) {
                            image.writeZeroes(range.offset(), range.byteLength(), range.unmap());
                        }
                    }
                    return 0;
                }) == 0 ? BlkAbi.S_OK : BlkAbi.S_IOERR;
            }
        }
        memory.write8(statusAt, (byte) status);
        queue.addUsed(memory, request.head(), (int) (written + 1));
    }

    private static long offset(long sector) {
        return sector << BlkAbi.SECTOR_SHIFT;
    }

    private MemorySegment[] segments(List<Descriptor> data) {
        for (int i = 0; i < data.size(); i++) {
            Descriptor d = data.get(i);
            buffers[i] = memory.slice(d.address(), Buffers.length(d));
        }
        return buffers;
    }

    @FunctionalInterface
    private interface Io {
        long run();
    }

    /** Runs backend calls; a failed system call is the request's IOERR (-1), reported to the host once. */
    private long io(Io call) {
        try {
            return call.run();
        } catch (SyscallException e) {
            backendError(e.getMessage(), e);
            return -1;
        }
    }

    private void backendError(String what, Throwable cause) {
        LOG.log(Level.WARNING, name + " (" + image.path() + "): " + what);
        if (!backendErrorReported) {
            backendErrorReported = true;
            context.reportFatal(name + ": I/O error on " + image.path() + ", the guest sees IOERR: " + what, cause);
        }
    }

    private void fail(String what, Throwable cause) {
        broken = true;
        LOG.log(Level.ERROR, name + ": " + what, cause);
        try {
            context.needsReset(name + ": " + what + ": " + cause);
            context.reportFatal(name + ": " + what, cause);
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, name + ": could not report the failure", e);
        }
    }

    /** Parks the thread after the request in flight; returns once it is parked (or has ended). */
    void quiesce() {
        synchronized (this) {
            paused = true;
            if (!ended) {
                control.signal();
            }
            long deadline = System.nanoTime() + WAIT_NANOS;
            boolean interrupted = false;
            while (!parked && !ended) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    LOG.log(Level.WARNING, name + ": the I/O thread did not pause within " + WAIT_NANOS / 1_000_000_000 + " s");
                    break;
                }
                try {
                    wait(left / 1_000_000 + 1);
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    synchronized void resume() {
        paused = false;
        notifyAll();
        if (!ended) {
            // drain what came while paused
            control.signal();
        }
    }

    /**
     * Stops the thread after the request in flight and joins it, then frees its epoll, eventfd and
     * iovecs. A thread that does not end in time (a hung backend) is left with them, and logged.
     */
    void stop() {
        synchronized (this) {
            stopping = true;
            if (!ended) {
                control.signal();
            }
            notifyAll();
        }
        long deadline = System.nanoTime() + WAIT_NANOS;
        boolean interrupted = false;
        while (thread.isAlive()) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                LOG.log(Level.ERROR, name + ": the I/O thread did not end within " + WAIT_NANOS / 1_000_000_000 + " s; left running");
                break;
            }
            try {
                thread.join(left / 1_000_000 + 1);
            } catch (InterruptedException e) {
                interrupted = true; // the caller relies on the thread being gone
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (!thread.isAlive()) {
            try {
                epoll.remove(notifier.fd());
            } catch (RuntimeException e) {
                // the transport may have closed the notifier already; closing the epoll drops it anyway
            }
            closeAll(epoll, control, iov);
        }
    }
}
