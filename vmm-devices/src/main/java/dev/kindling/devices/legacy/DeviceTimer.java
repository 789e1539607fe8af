package dev.kindling.devices.legacy;

import java.util.concurrent.Future;

/**
 * Where a device model's delayed work runs: one daemon thread per device in a VM
 * ({@link LegacyIo#timerThread}), a clock the test moves by hand in unit tests.
 */
interface DeviceTimer {
    /** Runs {@code task} once, {@code delayNanos} from now; the future cancels it. */
    Future<?> schedule(Runnable task, long delayNanos);

    /**
     * Drops what is pending and waits (bounded) for a running task and the thread to end; called from
     * a task, it does not wait. Nothing runs afterwards.
     */
    void stop();
}
