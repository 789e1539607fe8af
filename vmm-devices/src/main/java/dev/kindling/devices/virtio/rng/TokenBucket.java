package dev.kindling.devices.virtio.rng;

import java.util.function.LongSupplier;

/** A token bucket of bytes: holds up to the burst, refilled continuously at the rate. Not thread-safe. */
final class TokenBucket {
    private static final double NANOS_PER_SECOND = 1e9;

    private final double rate;
    private final double burst;
    private final LongSupplier clock;
    private double tokens;
    private long last;

    TokenBucket(VirtioRng.RateLimit limit, LongSupplier clock) {
        this.rate = limit.bytesPerSecond();
        this.burst = limit.burst();
        this.clock = clock;
        this.tokens = burst;
        this.last = clock.getAsLong();
    }

    private void refill() {
        long now = clock.getAsLong();
        tokens = Math.min(burst, tokens + (now - last) * rate / NANOS_PER_SECOND);
        last = now;
    }

    /** The bytes a request of {@code want} may have now (at most the burst), or 0: then nothing is taken. */
    long take(long want) {
        refill();
        long need = (long) Math.min(want, burst);
        if (tokens < need) {
            return 0;
        }
        tokens -= need;
        return need;
    }

    /** Milliseconds (at least 1) until {@link #take} of {@code want} would succeed. */
    int millisUntilAvailable(long want) {
        refill();
        double missing = Math.min(want, burst) - tokens;
        double millis = Math.ceil(missing / rate * 1000);
        return (int) Math.max(1, Math.min(Integer.MAX_VALUE, millis));
    }

    long available() {
        refill();
        return (long) tokens;
    }
}
