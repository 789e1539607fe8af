package dev.kindling.devices.virtio.rng;

import dev.kindling.devices.virtio.VirtioContext;
import dev.kindling.devices.virtio.VirtioDevice;
import dev.kindling.devices.virtio.VirtioIds;
import dev.kindling.devices.virtio.VirtioWorker;
import dev.kindling.devices.virtio.VirtioWorkers;
import dev.kindling.devices.virtio.queue.Descriptor;
import dev.kindling.devices.virtio.queue.DescriptorChain;
import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.devices.virtio.queue.VirtqueueException;
import dev.kindling.memory.GuestMemory;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.function.LongSupplier;

/**
 * virtio-rng (virtio 1.2 section 5.4, device ID 4): one request queue whose device-writable buffers it
 * fills from a {@link SecureRandom}, on a device thread woken by the queue's notifier. A request of
 * more than {@link #MAX_REQUEST} bytes is filled up to that much (the used length says how many), so
 * a guest cannot make the thread produce gigabytes in one go. A chain with device-readable buffers, or
 * one the queue rejects, is returned with length 0.
 *
 * <p><b>Rate limit.</b> With a {@link RateLimit}, a token bucket of {@code burst} bytes refilled at
 * {@code bytesPerSecond}: a request waits, in the device thread (the vCPU that notified goes on at
 * once), until the bucket holds its size; one larger than the burst is filled with {@code burst}
 * bytes. Later requests queue behind it in the ring. The waiting request stays in the ring (it is
 * taken again when the bucket has refilled), so a pause finds no request taken: a snapshot of the
 * device is its queue alone.
 */
public final class VirtioRng implements VirtioDevice {
    /** The largest fill of one request; the driver asks again for more. */
    public static final int MAX_REQUEST = 64 * 1024;
    private static final int QUEUE_SIZE = 256;
    private static final int CHUNK = 4096;

    /** Entropy at most {@code bytesPerSecond} on average, {@code burst} at once. */
    public record RateLimit(long bytesPerSecond, long burst) {
        public RateLimit {
            if (bytesPerSecond <= 0) {
                throw new IllegalArgumentException("rng rate limit must be positive bytes per second, not " + bytesPerSecond);
            }
            if (burst <= 0) {
                throw new IllegalArgumentException("rng burst must be positive bytes, not " + burst);
            }
        }
    }

    private final String name;
    private final SecureRandom random;
    private final RateLimit limit;
    private final LongSupplier nanoClock;
    private final VirtioWorkers workers;

    /** Unlimited entropy from a new default {@link SecureRandom}. */
    public VirtioRng(String name) {
        this(name, new SecureRandom(), null);
    }

    /**
     * Entropy from {@code random}, at most as fast as {@code limit} allows (null: no limit).
     */
    public VirtioRng(String name, SecureRandom random, RateLimit limit) {
        this(name, random, limit, System::nanoTime);
    }

    VirtioRng(String name, SecureRandom random, RateLimit limit, LongSupplier nanoClock) {
        this.name = Objects.requireNonNull(name, "name");
        this.random = Objects.requireNonNull(random, "random");
        this.limit = limit;
        this.nanoClock = nanoClock;
        this.workers = new VirtioWorkers(name);
    }

    @Override
    public int deviceType() {
        return VirtioIds.RNG;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long features() {
        return 0;
    }

    @Override
    public int queueCount() {
        return 1;
    }

    @Override
    public int queueMaxSize(int index) {
        return QUEUE_SIZE;
    }

    @Override
    public int configSize() {
        return 0;
    }

    @Override
    public long readConfig(int offset, int size) {
        return 0;
    }

    @Override
    public void writeConfig(int offset, int size, long value) {}

    public Optional<RateLimit> rateLimit() {
        return Optional.ofNullable(limit);
    }

    @Override
    public void activate(VirtioContext context) {
        Server server = new Server(context);
        workers.activate(context, a -> a.start("rng", List.of(context.queueNotifier(0)), w -> () -> server.serve(w)));
    }

    @Override
    public void reset() {
        workers.reset();
    }

    @Override
    public void quiesce() {
        workers.quiesce();
    }

    @Override
    public void resume() {
        workers.resume();
    }

    @Override
    public void close() {
        workers.close();
    }

    @Override
    public String toString() {
        return name + " (virtio-rng" + (limit == null ? "" : ", " + limit.bytesPerSecond() + " B/s, burst " + limit.burst()) + ")";
    }

    /** One activation: the queue and the bucket. Used by its thread only. */
    private final class Server {
        private final VirtioContext context;
        private final GuestMemory memory;
        private final Virtqueue queue;
        /** Random bytes made ahead, used from {@code poolUsed} on, each once. */
        private final byte[] pool = new byte[CHUNK];
        private int poolUsed = CHUNK;
        private final TokenBucket bucket;
        private boolean broken;

        Server(VirtioContext context) {
            this.context = context;
            this.memory = context.memory();
            this.queue = context.queues().get(0);
            this.bucket = limit == null ? null : new TokenBucket(limit, nanoClock);
        }

        int serve(VirtioWorker worker) {
            if (broken || !queue.ready()) {
                return -1;
            }
            boolean used = false;
            try {
                while (true) {
                    if (worker.yieldAsked()) {
                        return 0; // a stop or a pause between two requests; served again after a resume
                    }
                    Optional<DescriptorChain> next;
                    try {
                        next = queue.pop(memory);
                    } catch (VirtqueueException.InvalidChain e) {
                        queue.addUsed(memory, e.head(), 0);
                        used = true;
                        continue;
                    }
                    if (next.isEmpty()) {
                        if (queue.setNotificationsEnabled(memory, true)) {
                            continue; // chains arrived while enabling
                        }
                        return -1;
                    }
                    DescriptorChain chain = next.get();
                    // a request is device-writable buffers only; anything else is answered with nothing
                    long want = chain.readable().isEmpty() ? Math.min(chain.writableLength(), MAX_REQUEST) : 0;
                    if (want > 0 && bucket != null) {
                        long granted = bucket.take(want);
                        if (granted == 0) {
                            // given back while it waits, so a pause (and a snapshot) finds no request taken
                            queue.undoPop(memory, chain);
                            return bucket.millisUntilAvailable(want);
                        }
                        want = granted;
                    }
                    queue.addUsed(memory, chain.head(), fill(chain.writable(), (int) want));
                    used = true;
                }
            } catch (VirtqueueException e) {
                broken = true;
                context.needsReset(name + ": " + e.getMessage());
                return -1;
            } finally {
                if (used) {
                    context.signalUsed(0);
                }
            }
        }

        /** Writes {@code length} random bytes into the buffers, in order; returns the bytes written. */
        private int fill(List<Descriptor> buffers, int length) {
            int done = 0;
            for (Descriptor d : buffers) {
                if (done == length) {
                    break;
                }
                int n = (int) Math.min(Integer.toUnsignedLong(d.length()), length - done);
                MemorySegment dst = memory.slice(d.address(), n);
                for (int off = 0; off < n; ) {
                    if (poolUsed == CHUNK) {
                        random.nextBytes(pool);
                        poolUsed = 0;
                    }
                    int c = Math.min(CHUNK - poolUsed, n - off);
                    MemorySegment.copy(pool, poolUsed, dst, ValueLayout.JAVA_BYTE, off, c);
                    Arrays.fill(pool, poolUsed, poolUsed + c, (byte) 0); // what the guest has is not kept
                    poolUsed += c;
                    off += c;
                }
                done += n;
            }
            return done;
        }
    }
}
