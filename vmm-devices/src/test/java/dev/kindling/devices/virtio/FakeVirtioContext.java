package dev.kindling.devices.virtio;

import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.memory.GuestMemory;
import dev.kindling.sys.EventFd;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadFactory;

/**
 * A transport for device tests: the queues of {@link VirtqueueDriver}s, an eventfd per queue that
 * {@link #kick} signals as the driver's notify would, and records of interrupts (after the queue's
 * own suppression check, as a transport does), needsReset and fatal reports.
 */
public final class FakeVirtioContext implements VirtioContext, AutoCloseable {
    private final GuestMemory memory;
    private final long features;
    private final List<VirtqueueDriver> drivers;
    private final List<EventFd> notifiers = new ArrayList<>();
    private final int[] interrupts;
    private final List<String> resets = new CopyOnWriteArrayList<>();
    private final List<String> fatals = new CopyOnWriteArrayList<>();
    private final RecordingThreads threads = new RecordingThreads("fake-vm-dev");

    public FakeVirtioContext(long features, List<VirtqueueDriver> drivers) {
        this.memory = drivers.get(0).memory();
        this.features = features;
        this.drivers = List.copyOf(drivers);
        for (int i = 0; i < drivers.size(); i++) {
            notifiers.add(EventFd.nonBlocking());
        }
        this.interrupts = new int[drivers.size()];
    }

    @Override
    public GuestMemory memory() {
        return memory;
    }

    @Override
    public long features() {
        return features;
    }

    @Override
    public List<Virtqueue> queues() {
        return drivers.stream().map(VirtqueueDriver::queue).toList();
    }

    @Override
    public EventFd queueNotifier(int index) {
        return notifiers.get(index);
    }

    /** The driver notifies queue {@code index}. */
    public void kick(int index) {
        notifiers.get(index).signal();
    }

    @Override
    public synchronized void signalUsed(int index) {
        if (drivers.get(index).queue().needsNotification(memory)) {
            interrupts[index]++;
            notifyAll();
        }
    }

    public synchronized int interrupts(int index) {
        return interrupts[index];
    }

    @Override
    public void signalConfigChange() {}

    @Override
    public void needsReset(String why) {
        resets.add(why);
    }

    public List<String> resets() {
        return List.copyOf(resets);
    }

    @Override
    public ThreadFactory threads() {
        return threads;
    }

    public RecordingThreads recordingThreads() {
        return threads;
    }

    @Override
    public void reportFatal(String what, Throwable cause) {
        fatals.add(what + ": " + cause);
    }

    public List<String> fatals() {
        return List.copyOf(fatals);
    }

    @Override
    public void close() {
        for (EventFd e : notifiers) {
            e.close();
        }
    }
}
