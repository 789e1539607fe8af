package dev.kindling.devices.virtio.blk;

import dev.kindling.devices.virtio.VirtioContext;
import dev.kindling.devices.virtio.VirtioWorker;
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
import dev.kindling.sys.IoVec;
import dev.kindling.sys.SyscallException;
import java.lang.System.Logger.Level;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * What the I/O thread of one activated {@link VirtioBlk} does each time the queue's notifier wakes
 * it (a {@link VirtioWorker} body): drains the queue with driver notifications off, turns them on
 * again and checks once more before sleeping, and interrupts the driver once per batch. A stop or a
 * pause takes effect between requests, so a request the used ring acknowledges has completed in the
 * image.
 *
 * <p>A malformed chain or request fails that request; a broken ring marks the device
 * DEVICE_NEEDS_RESET and the thread serves nothing more until stopped (as the worker does after an
 * unexpected failure). A backend I/O error fails the request with IOERR and is reported to the host
 * program once.
 */
final class BlkServer implements VirtioWorker.Body {
    private static final System.Logger LOG = System.getLogger(BlkServer.class.getName());

    private final String name;
    private final VirtioWorker worker;
    private final VirtioContext context;
    private final GuestMemory memory;
    private final Virtqueue queue;
    private final DiskImage image;
    private final Limits limits;
    private final byte[] id;
    private final boolean writeThrough;
    /** Freed by {@link #ended()}, on the thread that used it. */
    private final IoVec.Array iov;
    private final MemorySegment[] buffers;

    /** Set once the device must be reset: serve nothing more. Thread-confined. */
    private boolean broken;
    private boolean backendErrorReported;

    BlkServer(String name, VirtioWorker worker, VirtioContext context, DiskImage image, Limits limits, byte[] id,
            boolean writeThrough) {
        this.name = name;
        this.worker = worker;
        this.context = context;
        this.memory = context.memory();
        this.queue = context.queues().getFirst();
        this.image = image;
        this.limits = limits;
        this.id = id;
        this.writeThrough = writeThrough;
        this.iov = new IoVec.Array(limits.config().segMax());
        this.buffers = new MemorySegment[limits.config().segMax()];
    }

    @Override
    public int serve() {
        if (!broken) {
            drain();
        }
        return -1;
    }

    @Override
    public void ended() {
        iov.close();
    }

    /** Serves chains until the ring is empty with notifications on, or a stop or pause is asked. */
    private void drain() {
        while (true) {
            queue.setNotificationsEnabled(memory, false);
            int served = 0;
            // A batch is at most one ring's worth, so the driver hears of completions while it keeps the queue full.
            while (served < queue.size() && !worker.yieldAsked()) {
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
            if (worker.yieldAsked()) {
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
                    if (writeThrough) {
                        image.flush();
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
                    if (writeThrough) {
                        image.flush(); // a write like any other: durable before it is acknowledged
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
}
