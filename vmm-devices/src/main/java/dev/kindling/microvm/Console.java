package dev.kindling.microvm;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * What the guest wrote to its console, kept in memory (the last {@link #CAPACITY} bytes) and passed on
 * to the stream the user gave, if any. Tests wait on it for markers.
 */
public final class Console extends OutputStream {
    public static final int CAPACITY = 1 << 20;

    private final OutputStream forward;
    /** Grows up to {@link #CAPACITY} as output arrives, so a quiet guest costs little memory. */
    private byte[] ring = new byte[4096];
    private long written;

    Console(OutputStream forward) {
        this.forward = forward;
    }

    @Override
    public void write(int b) throws IOException {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        synchronized (this) {
            if (written + len > ring.length && ring.length < CAPACITY) {
                ring = java.util.Arrays.copyOf(ring, (int) Math.min(CAPACITY, Math.max(2L * ring.length, written + len)));
            }
            for (int i = 0; i < len; i++) {
                ring[(int) (written++ % ring.length)] = b[off + i];
            }
            notifyAll();
        }
        if (forward != null) {
            forward.write(b, off, len);
        }
    }

    @Override
    public void flush() throws IOException {
        if (forward != null) {
            forward.flush();
        }
    }

    /** Everything kept so far (the last {@link #CAPACITY} bytes), decoded as UTF-8. */
    public synchronized String text() {
        int n = (int) Math.min(written, ring.length);
        byte[] out = new byte[n];
        long start = written - n;
        for (int i = 0; i < n; i++) {
            out[i] = ring[(int) ((start + i) % ring.length)];
        }
        return new String(out, StandardCharsets.UTF_8);
    }

    /** Waits until the console shows {@code marker}; false on timeout. */
    public boolean awaitText(String marker, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (this) {
            while (!text().contains(marker)) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                wait(Math.max(1, left / 1_000_000));
            }
            return true;
        }
    }
}
