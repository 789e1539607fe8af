package dev.kindling.devices.legacy;

import dev.kindling.device.Device;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Small helpers the legacy devices share: access-size checks, BCD, overflow-free time scaling and
 * the daemon threads the devices run. Nothing here knows about a particular device.
 */
final class LegacyIo {
    static final long NANOS_PER_SECOND = 1_000_000_000L;

    private LegacyIo() {}

    /** What a read the device does not decode returns: all ones, as an undriven ISA bus does. */
    static long unclaimed(int size) {
        return size <= 0 ? 0 : Device.ones(size);
    }

    /** True for an access of one byte inside {@code [0, length)}: the only kind 8-bit ISA chips decode. */
    static boolean byteAccess(long offset, int size, long length) {
        return size == 1 && offset >= 0 && offset < length;
    }

    /** Binary 0..99 to packed BCD. Values out of range are taken modulo 100. */
    static int toBcd(int value) {
        int v = Math.floorMod(value, 100);
        return ((v / 10) << 4) | (v % 10);
    }

    /** Packed BCD to binary. Nibbles above 9 are taken at face value, as the chips' adders do. */
    static int fromBcd(int bcd) {
        return ((bcd >> 4) & 0xf) * 10 + (bcd & 0xf);
    }

    /**
     * {@code value * mul / div} rounded down, without overflow for {@code value >= 0} as long as
     * {@code (div - 1) * mul} fits a long (true for every clock conversion here: ns and MHz, ns and 32 kHz).
     */
    static long scale(long value, long mul, long div) {
        return (value / div) * mul + (value % div) * mul / div;
    }

    /** As {@link #scale} but rounded up: the first time at which {@code scale} reaches the value. */
    static long scaleCeil(long value, long mul, long div) {
        return (value / div) * mul + ((value % div) * mul + div - 1) / div;
    }

    /**
     * A single daemon thread for timers; cancelled tasks are removed at once so none linger.
     * {@link #shutdown} ends its thread for good.
     */
    static ScheduledExecutorService timerThread(String name) {
        return new DaemonTimer(name);
    }

    /** A one-thread scheduler that remembers its thread, so that shutting it down can wait for the thread to end. */
    private static final class DaemonTimer extends ScheduledThreadPoolExecutor {
        private final List<Thread> threads = new CopyOnWriteArrayList<>();

        DaemonTimer(String name) {
            super(1);
            setThreadFactory(r -> {
                Thread t = new Thread(r, name);
                t.setDaemon(true);
                threads.add(t);
                return t;
            });
            setRemoveOnCancelPolicy(true);
            setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
            setContinueExistingPeriodicTasksAfterShutdownPolicy(false);
        }
    }

    /** Starts a daemon thread. */
    static Thread daemon(String name, Runnable body) {
        Thread t = new Thread(body, name);
        t.setDaemon(true);
        t.start();
        return t;
    }

    /**
     * Stops an executor and waits (a second at most) for its running task to finish and, for a
     * {@link #timerThread}, for the thread to end. Called from the executor's own thread, it does not wait.
     */
    static void shutdown(ExecutorService ex) {
        if (ex == null) {
            return;
        }
        ex.shutdownNow();
        if (ex instanceof DaemonTimer timer && timer.threads.contains(Thread.currentThread())) {
            return;
        }
        try {
            ex.awaitTermination(1, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return;
        }
        if (ex instanceof DaemonTimer timer) {
            for (Thread t : timer.threads) {
                join(t, 1_000);
            }
        }
    }

    /** Waits up to {@code millis} for a thread to end; keeps the caller's interrupt status. */
    static void join(Thread t, long millis) {
        if (t == null || t == Thread.currentThread()) {
            return;
        }
        try {
            t.join(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
