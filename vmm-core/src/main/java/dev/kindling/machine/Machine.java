package dev.kindling.machine;

import dev.kindling.bus.AddressSpace;
import dev.kindling.bus.Bus;
import dev.kindling.bus.BusRange;
import dev.kindling.device.Device;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A virtual machine: guest memory, the port and MMIO buses, devices and vCPUs on a {@link Platform},
 * with one platform thread per vCPU. Lifecycle: {@link #start()}, {@link #pause()} / {@link #resume()},
 * {@link #stop()}, {@link #close()}. The machine ends when the guest resets, powers off or fails, or
 * when the host stops it; {@link #awaitExit(Duration)} says why.
 */
public final class Machine implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(Machine.class.getName());
    private static final long JOIN_TIMEOUT_MS = 10_000;
    /** After this, a vCPU thread still not gone is interrupted: a device may hold it in a Java wait. */
    private static final long KICK_GRACE_MS = 1_000;

    /** Where a machine is in its lifecycle. */
    public enum State {
        /** Built, not started. */
        CREATED,
        /** Its vCPUs run the guest. */
        RUNNING,
        /** Started, with every vCPU parked by {@link #pause()}. */
        PAUSED,
        /** The guest ended or the host stopped it (see {@link #onExit()}). */
        STOPPED,
        /** Closed: everything it held is freed. */
        CLOSED
    }

    private final Platform platform;
    private final GuestMemory memory;
    private final Bus pio = new Bus("pio");
    private final Bus mmio = new Bus("mmio");
    private final List<VirtualCpu> vcpus = new ArrayList<>();
    private final List<Thread> threads = new ArrayList<>();
    private final List<AutoCloseable> owned = new ArrayList<>();
    private final CompletableFuture<StopReason> exit = new CompletableFuture<>();
    private final String name;

    private final Object lock = new Object();
    /** Never PAUSED: pausing is {@link #pauseRequested} on a running machine. */
    private State state = State.CREATED;
    /** Why the machine ended, once it has; {@link #onExit()} completes with it. */
    private StopReason endReason;
    private boolean pauseRequested;
    private int parked;
    private int running;

    /**
     * Builds a machine on {@code platform} with {@code memory} as its RAM and {@code vcpuCount}
     * vCPUs. Takes ownership of both: if this fails, or when the machine is closed, they are closed.
     */
    public Machine(String name, Platform platform, GuestMemory memory, int vcpuCount, boolean strictMmio) {
        this.name = name;
        this.platform = platform;
        this.memory = memory;
        try {
            if (vcpuCount < 1 || vcpuCount > platform.maxVcpus()) {
                throw new IllegalArgumentException("vCPU count " + vcpuCount + " is outside 1.." + platform.maxVcpus());
            }
            for (MemoryRegion r : memory.regions()) {
                platform.addMemory(r);
            }
            for (int i = 0; i < vcpuCount; i++) {
                vcpus.add(platform.createVcpu(i, vcpuCount, pio, mmio, strictMmio));
            }
        } catch (RuntimeException e) {
            closeQuietly();
            throw e;
        }
    }

    public String name() {
        return name;
    }

    public Platform platform() {
        return platform;
    }

    public GuestMemory memory() {
        return memory;
    }

    public Bus pio() {
        return pio;
    }

    public Bus mmio() {
        return mmio;
    }

    /** The bus of {@code space}. */
    public Bus bus(AddressSpace space) {
        return space == AddressSpace.PIO ? pio : mmio;
    }

    public List<VirtualCpu> vcpus() {
        return List.copyOf(vcpus);
    }

    /** Puts {@code device} on the port bus at {@code [base, base + length)}; the machine closes it. */
    public BusRange attachPio(long base, long length, Device device) {
        return attach(pio, base, length, device);
    }

    /** Puts {@code device} on the MMIO bus at {@code [base, base + length)}; the machine closes it. */
    public BusRange attachMmio(long base, long length, Device device) {
        return attach(mmio, base, length, device);
    }

    /** Puts {@code device} on the bus of {@code space} at {@code [base, base + length)}; the machine closes it. */
    public BusRange attach(AddressSpace space, long base, long length, Device device) {
        return attach(bus(space), base, length, device);
    }

    private BusRange attach(Bus bus, long base, long length, Device device) {
        own(device); // first: if the range is refused, closing the machine still closes the device
        return bus.register(base, length, device);
    }

    /** Makes the machine close {@code resource} when it closes (devices, backends, helper threads). */
    public void own(AutoCloseable resource) {
        synchronized (lock) {
            if (!owned.contains(resource)) {
                owned.add(resource);
            }
        }
    }

    /** Starts every vCPU thread. */
    public void start() {
        synchronized (lock) {
            if (state != State.CREATED) {
                throw new IllegalStateException("machine " + name + " is " + state.name().toLowerCase() + ", not new");
            }
            state = State.RUNNING;
            for (VirtualCpu vcpu : vcpus) {
                Thread t = new Thread(() -> vcpuLoop(vcpu), name + "-vcpu-" + vcpu.index());
                t.setDaemon(true);
                threads.add(t);
                running++;
            }
        }
        threads.forEach(Thread::start);
    }

    private void vcpuLoop(VirtualCpu vcpu) {
        try {
            while (true) {
                synchronized (lock) {
                    while (pauseRequested && state == State.RUNNING) {
                        parked++;
                        lock.notifyAll();
                        try {
                            lock.wait();
                        } finally {
                            parked--;
                        }
                    }
                    if (state != State.RUNNING) {
                        return;
                    }
                }
                if (vcpu.run() instanceof VcpuEvent.Ended ended) {
                    end(ended.reason());
                    return;
                }
            }
        } catch (Throwable t) {
            LOG.log(Level.ERROR, "vCPU " + vcpu.index() + " of " + name + " failed", t);
            end(new StopReason.HostError(vcpu.index(), t));
        } finally {
            synchronized (lock) {
                running--;
                lock.notifyAll();
            }
            publishExit();
        }
    }

    /**
     * Ends the machine with {@code reason} (the first reason wins) and makes every vCPU leave; returns
     * at once. Devices call this for a guest's reset or power-off request, from any thread.
     */
    public void requestExit(StopReason reason) {
        end(reason);
    }

    private void end(StopReason reason) {
        boolean first;
        synchronized (lock) {
            if (state == State.RUNNING) {
                state = State.STOPPED;
                lock.notifyAll();
            }
            first = endReason == null;
            if (first) {
                endReason = reason;
            }
        }
        vcpus.forEach(VirtualCpu::kick);
        if (first) {
            LOG.log(Level.DEBUG, () -> name + " ended: " + reason.describe());
        }
    }

    /**
     * Completes {@link #onExit()} once the machine has ended, from a vCPU thread that has left its loop
     * or from {@link #stop()}: never inside a device call (a guest's reset request), so that what
     * waits on the exit may close the machine and never runs under a device's lock.
     */
    private void publishExit() {
        StopReason reason;
        synchronized (lock) {
            reason = endReason;
        }
        if (reason != null) {
            exit.complete(reason);
        }
    }

    /** Stops every vCPU and returns once all are parked. No-op unless running. */
    public void pause() {
        synchronized (lock) {
            if (state != State.RUNNING || pauseRequested) {
                return;
            }
            pauseRequested = true;
        }
        vcpus.forEach(VirtualCpu::kick);
        long deadline = System.nanoTime() + JOIN_TIMEOUT_MS * 1_000_000;
        synchronized (lock) {
            while (state == State.RUNNING && parked < running) {
                long left = (deadline - System.nanoTime()) / 1_000_000;
                if (left <= 0) {
                    pauseRequested = false;
                    lock.notifyAll();
                    throw new IllegalStateException("machine " + name + ": " + (running - parked)
                            + " vCPU(s) did not pause within " + JOIN_TIMEOUT_MS + " ms (a device is holding them)");
                }
                try {
                    lock.wait(left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    public void resume() {
        synchronized (lock) {
            pauseRequested = false;
            lock.notifyAll();
        }
    }

    public boolean isPaused() {
        return state() == State.PAUSED;
    }

    public State state() {
        synchronized (lock) {
            return state == State.RUNNING && pauseRequested && parked == running ? State.PAUSED : state;
        }
    }

    /** Ends the machine (if it has not ended) and waits for its vCPU threads to leave. */
    public void stop() {
        synchronized (lock) {
            if (state == State.CREATED) {
                state = State.STOPPED;
            }
        }
        end(new StopReason.Stopped());
        try {
            joinThreads();
        } finally {
            publishExit();
        }
    }

    /**
     * Waits for the vCPU threads to leave. A thread still there after {@link #KICK_GRACE_MS} is not in
     * KVM_RUN (kicks reach that) but held by a device in a Java wait, such as a full serial output
     * buffer: it is interrupted, which such waits give up on.
     */
    private void joinThreads() {
        long deadline = System.nanoTime() + JOIN_TIMEOUT_MS * 1_000_000;
        for (Thread t : threads) {
            if (t == Thread.currentThread()) {
                continue;
            }
            try {
                t.join(KICK_GRACE_MS);
                if (t.isAlive()) {
                    t.interrupt();
                    t.join(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            if (t.isAlive()) {
                throw new IllegalStateException(t.getName() + " did not stop within " + JOIN_TIMEOUT_MS + " ms");
            }
        }
    }

    /**
     * A future that completes with why the machine ended. Each call returns a new copy, so completing or
     * cancelling it does not affect the machine or other callers. Dependent stages added without an
     * executor run on a vCPU thread that has left the guest, or on the thread that stopped the machine:
     * keep them short, or use the {@code ...Async} variants.
     */
    public CompletableFuture<StopReason> onExit() {
        return exit.copy();
    }

    /** Waits up to {@code timeout} for the machine to end; empty if it is still running. */
    public Optional<StopReason> awaitExit(Duration timeout) throws InterruptedException {
        try {
            return Optional.of(exit.get(timeout.toNanos(), TimeUnit.NANOSECONDS));
        } catch (TimeoutException e) {
            return Optional.empty();
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
    }

    /** Stops the machine and frees everything it holds: threads, devices, vCPUs, the VM and its memory. */
    @Override
    public void close() {
        synchronized (lock) {
            if (state == State.CLOSED) {
                return;
            }
        }
        boolean stopped = false;
        try {
            stop();
            stopped = true;
        } finally {
            synchronized (lock) {
                state = State.CLOSED;
            }
            if (!stopped) {
                // A vCPU thread may still touch guest memory: leave it mapped rather than crash the JVM.
                LOG.log(Level.ERROR, "machine " + name + " closed with a vCPU thread still running; its guest memory stays mapped");
            }
            closeQuietly(stopped);
        }
    }

    private void closeQuietly() {
        closeQuietly(true);
    }

    private void closeQuietly(boolean unmapMemory) {
        List<AutoCloseable> resources = new ArrayList<>();
        synchronized (lock) {
            resources.addAll(owned.reversed());
            owned.clear();
        }
        resources.addAll(vcpus.reversed());
        resources.add(platform);
        if (unmapMemory) {
            resources.add(memory);
        }
        RuntimeException failure = null;
        for (AutoCloseable r : resources) {
            try {
                r.close();
            } catch (Exception e) {
                if (failure == null) {
                    failure = new IllegalStateException("closing machine " + name + " failed", e);
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }
}
