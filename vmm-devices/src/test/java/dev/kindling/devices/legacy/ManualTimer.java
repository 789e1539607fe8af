package dev.kindling.devices.legacy;

import java.util.Comparator;
import java.util.PriorityQueue;
import java.util.concurrent.Future;
import java.util.concurrent.FutureTask;

/**
 * A {@link DeviceTimer} and nanosecond clock that move only when the test says, so device timing is
 * exact and independent of the machine's load. {@link #advanceTo} runs every task due on the way, each
 * at its own instant, in order; {@link #jumpTo} moves the clock without running anything (a late
 * timer thread), and the next {@link #advanceTo} runs the overdue tasks at the new time.
 */
final class ManualTimer implements DeviceTimer {
    /** More tasks than any device should need for one step: a device rescheduling without delay. */
    private static final int MAX_TASKS_PER_STEP = 1_000_000;

    private record Task(long due, long seq, FutureTask<Void> future) {}

    private final PriorityQueue<Task> queue =
            new PriorityQueue<>(Comparator.comparingLong(Task::due).thenComparingLong(Task::seq));
    private long now;
    private long seq;
    private boolean stopped;

    ManualTimer(long start) {
        now = start;
    }

    /** The clock, for the device's time source. */
    synchronized long now() {
        return now;
    }

    @Override
    public synchronized Future<?> schedule(Runnable task, long delayNanos) {
        if (stopped) {
            throw new IllegalStateException("timer stopped");
        }
        FutureTask<Void> f = new FutureTask<>(task, null);
        queue.add(new Task(now + Math.max(0, delayNanos), seq++, f));
        return f;
    }

    @Override
    public synchronized void stop() {
        stopped = true;
        queue.forEach(t -> t.future().cancel(false));
        queue.clear();
    }

    synchronized boolean stopped() {
        return stopped;
    }

    /** Tasks scheduled and neither run nor cancelled. */
    synchronized int pending() {
        return (int) queue.stream().filter(t -> !t.future().isDone()).count();
    }

    /** Moves the clock to {@code time} without running what falls due. */
    synchronized void jumpTo(long time) {
        checkForward(time);
        now = time;
    }

    /** Moves the clock to {@code time}, running each task that falls due at its instant (or now, if overdue). */
    void advanceTo(long time) {
        checkForward(time);
        for (int n = 0; ; n++) {
            Task next;
            synchronized (this) {
                next = queue.peek();
                if (next == null || next.due() > time) {
                    now = time;
                    return;
                }
                queue.poll();
                now = Math.max(now, next.due());
            }
            if (n == MAX_TASKS_PER_STEP) {
                throw new IllegalStateException("more than " + MAX_TASKS_PER_STEP + " timer tasks in one step");
            }
            next.future().run(); // outside the lock, as on a timer thread: the task takes the device's lock
            if (!next.future().isCancelled()) {
                rethrow(next.future());
            }
        }
    }

    void advanceBy(long nanos) {
        advanceTo(now() + nanos);
    }

    private synchronized void checkForward(long time) {
        if (time < now) {
            throw new IllegalArgumentException("the clock only moves forward: " + time + " < " + now);
        }
    }

    /** A task that threw fails the step: on a timer thread the exception would pass unnoticed. */
    private static void rethrow(FutureTask<Void> f) {
        try {
            f.get();
        } catch (Exception e) {
            throw new AssertionError("timer task failed", e);
        }
    }
}
