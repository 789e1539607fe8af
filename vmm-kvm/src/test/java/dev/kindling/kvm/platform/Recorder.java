package dev.kindling.kvm.platform;

import dev.kindling.device.Device;
import java.io.ByteArrayOutputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.LongConsumer;

/** A test device: records every write, answers reads from a table, and can react to writes. */
final class Recorder implements Device {
    record Write(long offset, int size, long value) {}

    private final String name;
    private final List<Write> writes = new ArrayList<>();
    private final Map<Long, Long> reads = new HashMap<>();
    private final Map<Long, LongConsumer> onWrite = new HashMap<>();

    Recorder(String name) {
        this.name = name;
    }

    synchronized Recorder answer(long offset, long value) {
        reads.put(offset, value);
        return this;
    }

    synchronized Recorder onWrite(long offset, LongConsumer action) {
        onWrite.put(offset, action);
        return this;
    }

    /** Waits until at least {@code n} writes were recorded; false if {@code limit} passed first. */
    synchronized boolean awaitWrites(int n, Duration limit) throws InterruptedException {
        long deadline = System.nanoTime() + limit.toNanos();
        while (writes.size() < n) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return false;
            }
            TimeUnit.NANOSECONDS.timedWait(this, left);
        }
        return true;
    }

    synchronized List<Write> writes() {
        return List.copyOf(writes);
    }

    synchronized List<Long> values(long offset) {
        return writes.stream().filter(w -> w.offset() == offset).map(Write::value).toList();
    }

    /** The bytes written at {@code offset}, as a string. */
    synchronized String text(long offset) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        writes.stream().filter(w -> w.offset() == offset).forEach(w -> b.write((int) w.value()));
        return b.toString();
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public synchronized long read(long offset, int size) {
        return reads.getOrDefault(offset, 0L);
    }

    @Override
    public void write(long offset, int size, long value) {
        LongConsumer action;
        synchronized (this) {
            writes.add(new Write(offset, size, value));
            action = onWrite.get(offset);
            notifyAll();
        }
        if (action != null) {
            action.accept(value);
        }
    }
}
