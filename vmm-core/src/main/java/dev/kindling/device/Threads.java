package dev.kindling.device;

import java.time.Duration;

/** Joining a device's own threads in close(), which must neither hang nor lose the caller's interrupt. */
public final class Threads {
    private Threads() {}

    /**
     * Waits up to {@code limit} for {@code t} to end; returns whether it did. Null or the calling
     * thread itself count as ended. An interrupt stops the wait and stays set.
     */
    public static boolean join(Thread t, Duration limit) {
        if (t == null || t == Thread.currentThread()) {
            return true;
        }
        try {
            return t.join(limit);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return !t.isAlive();
        }
    }
}
