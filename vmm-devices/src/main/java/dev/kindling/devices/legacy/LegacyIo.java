package dev.kindling.devices.legacy;

import dev.kindling.device.Device;
import dev.kindling.device.Threads;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Future;
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

    /** A single daemon thread for a device's timers, started on first use; cancelled tasks are removed at once. */
    static DeviceTimer timerThread(String name) {
        return new DaemonTimer(name);
    }

    /** A one-thread scheduler that remembers its thread, so that stopping it can wait for the thread to end. */
    private static final class DaemonTimer implements DeviceTimer {
        private final List<Thread> threads = new CopyOnWriteArrayList<>();
        private final ScheduledThreadPoolExecutor executor = new ScheduledThreadPoolExecutor(1);

        DaemonTimer(String name) {
            executor.setThreadFactory(r -> {
                Thread t = new Thread(r, name);
                t.setDaemon(true);
                threads.add(t);
                return t;
            });
            executor.setRemoveOnCancelPolicy(true);
            executor.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
            executor.setContinueExistingPeriodicTasksAfterShutdownPolicy(false);
        }

        @Override
        public Future<?> schedule(Runnable task, long delayNanos) {
            return executor.schedule(task, delayNanos, TimeUnit.NANOSECONDS);
        }

        /** Waits a second at most for the running task, then for the thread. */
        @Override
        public void stop() {
            executor.shutdownNow();
            if (threads.contains(Thread.currentThread())) {
                return;
            }
            try {
                executor.awaitTermination(1, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            for (Thread t : threads) {
                Threads.join(t, Duration.ofSeconds(1));
            }
        }
    }

    /** Starts a daemon thread. */
    static Thread daemon(String name, Runnable body) {
        Thread t = new Thread(body, name);
        t.setDaemon(true);
        t.start();
        return t;
    }
}
