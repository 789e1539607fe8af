package dev.kindling.devices.virtio.net;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import dev.kindling.sys.EventFd;
import dev.kindling.sys.Fd;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A backend for device tests: frames for the guest wait in a queue behind an eventfd that is readable
 * while the queue is not empty (level-triggered, as a tap is); frames the guest sends are kept.
 * Follows {@link NetBackend#receive}'s contract: a frame longer than the buffer is dropped.
 */
final class QueueBackend implements NetBackend {
    private final boolean vnetHeader;
    private final EventFd ready = EventFd.nonBlocking();
    private final ConcurrentLinkedDeque<byte[]> inbound = new ConcurrentLinkedDeque<>();
    private final LinkedBlockingQueue<byte[]> sent = new LinkedBlockingQueue<>();
    final AtomicInteger receiveCalls = new AtomicInteger();
    final AtomicInteger oversizeDropped = new AtomicInteger();
    final AtomicLong guestOffloads = new AtomicLong(-1);
    /** When set, send refuses every frame (a full backend). */
    volatile boolean refuse;
    /** When set, send throws (a broken backend). */
    volatile boolean failSend;
    /** When set, the fd stays readable whether frames wait or not (a peer gone, a backend bug). */
    volatile boolean stuckReadable;
    private volatile boolean closed;

    QueueBackend(boolean vnetHeader) {
        this.vnetHeader = vnetHeader;
    }

    /** Queues a frame for the guest (with its vnet header when {@link #vnetHeader()}). */
    void inject(byte[] frame) {
        if (frame.length == 0) {
            throw new IllegalArgumentException("an empty frame: receive's 0 means none");
        }
        inbound.add(frame.clone());
        ready.signal();
    }

    int waiting() {
        return inbound.size();
    }

    /** The next frame the guest sent, waiting up to {@code wait}; null if none came. */
    byte[] awaitSent(Duration wait) throws InterruptedException {
        return sent.poll(wait.toMillis(), TimeUnit.MILLISECONDS);
    }

    List<byte[]> drainSent() {
        List<byte[]> out = new ArrayList<>();
        sent.drainTo(out);
        return out;
    }

    boolean isClosed() {
        return closed;
    }

    @Override
    public Fd readable() {
        return ready.fd();
    }

    @Override
    public boolean vnetHeader() {
        return vnetHeader;
    }

    @Override
    public void setGuestOffloads(long guestFeatures) {
        guestOffloads.set(guestFeatures);
    }

    @Override
    public int receive(MemorySegment into) {
        receiveCalls.incrementAndGet();
        while (true) {
            byte[] f = inbound.poll();
            if (inbound.isEmpty() && !stuckReadable) {
                ready.read();
                if (!inbound.isEmpty()) {
                    ready.signal(); // a frame came in between: stay readable
                }
            }
            if (f == null) {
                return 0;
            }
            if (f.length > into.byteSize()) {
                oversizeDropped.incrementAndGet();
                continue;
            }
            MemorySegment.copy(f, 0, into, JAVA_BYTE, 0, f.length);
            return f.length;
        }
    }

    @Override
    public boolean send(MemorySegment frame) {
        if (failSend) {
            throw new IllegalStateException("backend broke");
        }
        if (refuse) {
            return false;
        }
        sent.add(frame.toArray(JAVA_BYTE));
        return true;
    }

    @Override
    public void close() {
        closed = true;
        ready.close();
    }
}
