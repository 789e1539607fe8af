package dev.kindling.machine;

import dev.kindling.bus.AddressSpace;
import dev.kindling.device.DeviceContext;
import dev.kindling.device.IoEvent;
import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemorySlot;
import dev.kindling.sys.EventFd;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One device's {@link DeviceContext} in a {@link Machine}: it keeps what the device registered
 * (ioeventfds, memory slots) so that the machine removes what is still there when it closes, and the
 * threads it made, so that the machine unmaps guest memory only once all of them have ended.
 */
final class MachineDeviceContext implements DeviceContext {
    private final Machine machine;
    private final String name;
    private final IrqLine irq;
    private final InterruptService interrupts;
    private final Set<AutoCloseable> registrations = new LinkedHashSet<>();
    private final List<Thread> threads = new ArrayList<>();
    private final ThreadFactory threadFactory = this::newThread;
    private int threadCount;
    private boolean closed;

    MachineDeviceContext(Machine machine, String name, IrqLine irq, InterruptService interrupts) {
        this.machine = machine;
        this.name = name;
        this.irq = irq;
        this.interrupts = interrupts;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public GuestMemory memory() {
        return machine.memory();
    }

    @Override
    public IrqLine irq() {
        return irq;
    }

    @Override
    public InterruptService interrupts() {
        return interrupts;
    }

    @Override
    public IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch) {
        checkOpen();
        IoEvent event = machine.platform().ioEvent(space, address, length, datamatch);
        return track(new TrackedIoEvent(event));
    }

    @Override
    public IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch, EventFd signal) {
        checkOpen();
        IoEvent event = machine.platform().ioEvent(space, address, length, datamatch, signal);
        return track(new TrackedIoEvent(event));
    }

    @Override
    public MemorySlot mapMemory(long guestAddress, MemorySegment host, boolean readOnly) {
        checkOpen();
        MemorySlot slot = machine.platform().mapMemory(guestAddress, host, readOnly);
        return track(new TrackedSlot(slot));
    }

    @Override
    public ThreadFactory threads() {
        return threadFactory;
    }

    @Override
    public void reportFatal(String what, Throwable cause) {
        machine.reportDeviceError(name, Objects.requireNonNull(what, "what"), cause);
    }

    private Thread newThread(Runnable task) {
        Objects.requireNonNull(task, "task");
        synchronized (this) {
            checkOpen();
            threads.removeIf(t -> t.getState() == Thread.State.TERMINATED);
            int n = threadCount++;
            Thread t = new Thread(task, machine.name() + "-" + name + (n == 0 ? "" : "-" + n));
            t.setDaemon(true);
            threads.add(t);
            return t;
        }
    }

    private void checkOpen() {
        synchronized (this) {
            if (closed) {
                throw new IllegalStateException("machine " + machine.name() + " is closed: device " + name
                        + " cannot register anything");
            }
        }
    }

    /** Registers {@code r}, or closes it if the machine closed meanwhile. */
    private <T extends AutoCloseable> T track(T r) {
        synchronized (this) {
            if (!closed) {
                registrations.add(r);
                return r;
            }
        }
        try {
            r.close();
        } catch (Exception e) {
            // the registration is gone with the machine either way
        }
        checkOpen();
        return r;
    }

    /**
     * A device closed {@code tracked}: the first time, forgets it (so the machine does not close it
     * again) and runs {@code close}.
     */
    private void closeTracked(AutoCloseable tracked, AtomicBoolean closed, Runnable close) {
        if (closed.getAndSet(true)) {
            return;
        }
        synchronized (this) {
            registrations.remove(tracked);
        }
        close.run();
    }

    /**
     * Removes the ioeventfds and memory slots the device left registered (the platform must still be
     * open); from then on the context refuses new ones and new threads.
     */
    void closeRegistrations() throws Exception {
        List<AutoCloseable> left;
        synchronized (this) {
            closed = true;
            left = new ArrayList<>(registrations).reversed();
        }
        Exception failure = null;
        for (AutoCloseable r : left) {
            try {
                r.close();
            } catch (Exception e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    /** Waits until {@code deadlineNanos} for the device's threads to end; returns those still alive. */
    List<Thread> awaitThreads(long deadlineNanos) {
        List<Thread> mine;
        synchronized (this) {
            mine = List.copyOf(threads);
        }
        List<Thread> alive = new ArrayList<>();
        boolean interrupted = false;
        for (Thread t : mine) {
            if (t == Thread.currentThread()) {
                alive.add(t);
                continue;
            }
            while (t.isAlive()) {
                long left = (deadlineNanos - System.nanoTime()) / 1_000_000;
                if (left <= 0) {
                    break;
                }
                try {
                    t.join(left);
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (t.isAlive()) {
                alive.add(t);
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        return alive;
    }

    /** Removes itself from the context when the device closes it, so the machine does not close it again. */
    private final class TrackedIoEvent implements IoEvent {
        private final IoEvent event;
        private final AtomicBoolean closed = new AtomicBoolean();

        TrackedIoEvent(IoEvent event) {
            this.event = event;
        }

        @Override
        public AddressSpace space() {
            return event.space();
        }

        @Override
        public long address() {
            return event.address();
        }

        @Override
        public EventFd eventFd() {
            return event.eventFd();
        }

        @Override
        public void close() {
            closeTracked(this, closed, event::close);
        }
    }

    private final class TrackedSlot implements MemorySlot {
        private final MemorySlot slot;
        private final AtomicBoolean closed = new AtomicBoolean();

        TrackedSlot(MemorySlot slot) {
            this.slot = slot;
        }

        @Override
        public long guestAddress() {
            return slot.guestAddress();
        }

        @Override
        public long size() {
            return slot.size();
        }

        @Override
        public boolean readOnly() {
            return slot.readOnly();
        }

        @Override
        public void move(long guestAddress) {
            slot.move(guestAddress);
        }

        @Override
        public void close() {
            closeTracked(this, closed, slot::close);
        }
    }
}
