package dev.kindling.devices.virtio;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadFactory;

/** A thread factory that keeps every thread it made, so tests can check that a device joined them. */
public final class RecordingThreads implements ThreadFactory {
    private final String prefix;
    private final List<Thread> threads = new CopyOnWriteArrayList<>();

    public RecordingThreads(String prefix) {
        this.prefix = prefix;
    }

    @Override
    public Thread newThread(Runnable r) {
        Thread t = new Thread(r, prefix);
        t.setDaemon(true);
        threads.add(t);
        return t;
    }

    public List<Thread> made() {
        return List.copyOf(threads);
    }

    /** Threads made and not yet ended. */
    public List<Thread> alive() {
        return threads.stream().filter(Thread::isAlive).toList();
    }
}
