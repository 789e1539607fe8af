package dev.kindling.machine;

import dev.kindling.bus.AddressSpace;
import dev.kindling.bus.Bus;
import dev.kindling.bus.BusRange;
import dev.kindling.device.Device;
import dev.kindling.device.DeviceContext;
import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A virtual machine: guest memory, the port and MMIO buses, devices and vCPUs on a {@link Platform},
 * with one platform thread per vCPU. Lifecycle: {@link #start()}, {@link #pause()} / {@link #resume()},
 * {@link #stop()}, {@link #close()}. The machine ends when the guest resets, powers off or fails, or
 * when the host stops it; {@link #awaitExit(Duration)} says why.
 *
 * <p>Devices with needs beyond their bus window get a {@link #deviceContext context}. Guest memory
 * is unmapped only once the vCPUs have stopped, every device has closed and every thread made through
 * a device context has ended; when one of them does not, the memory stays mapped (and the failure is
 * logged), since a thread still touching it must get an exception, never a crash.
 */
public final class Machine implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(Machine.class.getName());
    private static final long JOIN_TIMEOUT_MS = 10_000;
    /** After this, a vCPU thread still not gone is interrupted: a device may hold it in a Java wait. */
    private static final long KICK_GRACE_MS = 1_000;
    /** Device errors kept for {@link #deviceErrors()}; later ones are only logged. */
    private static final int MAX_DEVICE_ERRORS = 100;

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
    private final List<MachineDeviceContext> contexts = new ArrayList<>();
    private final List<DeviceError> deviceErrors = new ArrayList<>();
    /** Guarded by lock: what a snapshot saves besides the platform and the vCPUs, in order. */
    private final Map<String, Stateful> stateful = new LinkedHashMap<>();
    private final Set<String> failedDevices = new HashSet<>();
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

    /** Orders pause, resume and the devices' quiesce and resume; never held by a vCPU thread. */
    private final Object pauseLock = new Object();
    /** Guarded by pauseLock: the devices are quiesced, and resume() resumes them. */
    private boolean devicesQuiesced;
    /** How long one owned resource's close() may take before it is given up on. */
    private volatile long closeTimeoutMs = JOIN_TIMEOUT_MS;

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

    /**
     * A context for the device {@code deviceName} (unique in the machine, used in thread names), which
     * raises {@code irq} and reaches other interrupt sources through {@code interrupts}. What the device
     * registers through it (ioeventfds, memory slots) and leaves registered is removed when the machine
     * closes; its threads are named {@code <machine>-<device>[-N]}, and guest memory stays mapped
     * until all of them have ended.
     */
    public DeviceContext deviceContext(String deviceName, IrqLine irq, InterruptService interrupts) {
        Objects.requireNonNull(deviceName, "deviceName");
        Objects.requireNonNull(irq, "irq");
        Objects.requireNonNull(interrupts, "interrupts");
        if (deviceName.isBlank()) {
            throw new IllegalArgumentException("a device's name must not be blank");
        }
        MachineDeviceContext context = new MachineDeviceContext(this, deviceName, irq, interrupts);
        synchronized (lock) {
            if (state == State.CLOSED) {
                throw new IllegalStateException("machine " + name + " is closed");
            }
            if (contexts.stream().anyMatch(c -> c.name().equals(deviceName))) {
                throw new IllegalArgumentException("machine " + name + " already has a device named " + deviceName);
            }
            contexts.add(context);
        }
        return context;
    }

    /**
     * The fatal errors devices reported, oldest first (at most the first {@value #MAX_DEVICE_ERRORS}).
     * Each device's first one was logged at ERROR.
     */
    public List<DeviceError> deviceErrors() {
        synchronized (deviceErrors) {
            return List.copyOf(deviceErrors);
        }
    }

    void reportDeviceError(String device, String what, Throwable cause) {
        boolean first;
        synchronized (deviceErrors) {
            first = failedDevices.add(device);
            if (deviceErrors.size() < MAX_DEVICE_ERRORS) {
                deviceErrors.add(new DeviceError(device, what, cause));
            }
        }
        String line = "device " + device + " of machine " + name + " failed: " + what;
        LOG.log(first ? Level.ERROR : Level.DEBUG, line, cause);
    }

    /**
     * Registers {@code part} (a device model) for snapshots under {@code name}. A machine restored
     * from a snapshot must register the same parts, under the same names, in the same order.
     */
    public void addStateful(String name, Stateful part) {
        synchronized (lock) {
            if (stateful.putIfAbsent(name, Objects.requireNonNull(part)) != null) {
                throw new IllegalArgumentException("machine " + name() + " already has a part named " + name);
            }
        }
    }

    /** The names {@link #addStateful} registered, in order. */
    public List<String> statefulNames() {
        synchronized (lock) {
            return List.copyOf(stateful.keySet());
        }
    }

    /**
     * The state of this paused machine, all but its memory: the platform's, each vCPU's and each
     * registered part's. Guest memory does not change while the machine stays paused.
     *
     * @throws IllegalStateException unless the machine is paused
     * @throws SnapshotException if a part cannot be saved
     */
    public MachineState saveState() {
        synchronized (pauseLock) {
            if (state() != State.PAUSED || !devicesQuiesced) {
                throw new IllegalStateException("machine " + name + " is " + state().name().toLowerCase()
                        + ": pause it before saving its state");
            }
            byte[] platformState = save(platform);
            List<byte[]> vcpuStates = vcpus.stream().map(Machine::save).toList();
            List<MachineState.Part> parts = new ArrayList<>();
            Map<String, Stateful> all;
            synchronized (lock) {
                all = new LinkedHashMap<>(stateful);
            }
            all.forEach((n, part) -> {
                try {
                    parts.add(new MachineState.Part(n, save(part)));
                } catch (RuntimeException e) {
                    throw e instanceof SnapshotException ? e : new SnapshotException("saving the state of " + n + " failed: " + e, e);
                }
            });
            return new MachineState(platformState, vcpuStates, parts);
        }
    }

    private static byte[] save(Stateful part) {
        StateWriter out = new StateWriter();
        part.saveState(out);
        return out.toByteArray();
    }

    /**
     * Restores {@code saved} into this machine, which must be new (not started) and made with the same
     * configuration: the same vCPU count and registered parts. The platform first, then the vCPUs (in
     * place of their boot state), then the parts. Then {@link #start()} goes on where the saved
     * machine stopped.
     *
     * @throws SnapshotException if the state does not fit this machine or is corrupted
     */
    public void restoreState(MachineState saved) {
        Map<String, Stateful> all;
        synchronized (lock) {
            if (state != State.CREATED) {
                throw new IllegalStateException("machine " + name + " is " + state.name().toLowerCase() + ": only a new machine is restored");
            }
            all = new LinkedHashMap<>(stateful);
        }
        if (saved.vcpus().size() != vcpus.size()) {
            throw new SnapshotException("the snapshot has " + saved.vcpus().size() + " vCPU(s); machine " + name
                    + " has " + vcpus.size());
        }
        saved.checkParts(List.copyOf(all.keySet()), name);
        restore(platform, saved.platform(), "the VM of " + name);
        for (int i = 0; i < vcpus.size(); i++) {
            restore(vcpus.get(i), saved.vcpus().get(i), "vCPU " + i + " of " + name);
        }
        for (MachineState.Part p : saved.parts()) {
            restore(all.get(p.name()), p.state(), p.name() + " of " + name);
        }
    }

    private static void restore(Stateful part, byte[] state, String what) {
        StateReader in = new StateReader(state, what);
        try {
            part.restoreState(in);
        } catch (SnapshotException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new SnapshotException("restoring " + what + " failed: " + e, e);
        }
        in.expectEnd();
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

    /**
     * Parks every vCPU, then {@link Device#quiesce() quiesces} the devices (the last attached first),
     * and returns once the guest runs no instruction and no device thread touches guest memory. No-op
     * unless running. If a device fails to quiesce, the others still are, the machine stays paused and
     * this throws.
     */
    public void pause() {
        synchronized (pauseLock) {
            if (!parkVcpus()) {
                return;
            }
            List<Device> devices = devices().reversed();
            RuntimeException failure = null;
            for (Device d : devices) {
                try {
                    d.quiesce();
                } catch (RuntimeException e) {
                    failure = collect(failure, "device " + d.name() + " of machine " + name + " did not quiesce", e);
                }
            }
            devicesQuiesced = true;
            if (failure != null) {
                throw failure;
            }
        }
    }

    /** Asks the vCPUs to park and waits until they have; false if there was nothing to pause. */
    private boolean parkVcpus() {
        synchronized (lock) {
            if (state != State.RUNNING || pauseRequested) {
                return false;
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
                    pauseRequested = false;
                    lock.notifyAll();
                    Thread.currentThread().interrupt();
                    return false;
                }
            }
            return state == State.RUNNING;
        }
    }

    /**
     * Undoes {@link #pause()}: {@link Device#resume() resumes} the devices (the first attached first),
     * then lets the vCPUs run, so that whatever a vCPU asks of a device finds it serving. If a device
     * fails to resume, the rest still run and this throws.
     */
    public void resume() {
        synchronized (pauseLock) {
            RuntimeException failure = null;
            if (devicesQuiesced) {
                devicesQuiesced = false;
                for (Device d : devices()) {
                    try {
                        d.resume();
                    } catch (RuntimeException e) {
                        failure = collect(failure, "device " + d.name() + " of machine " + name + " did not resume", e);
                    }
                }
            }
            synchronized (lock) {
                pauseRequested = false;
                lock.notifyAll();
            }
            if (failure != null) {
                throw failure;
            }
        }
    }

    /** The devices the machine owns, in the order they were attached. */
    private List<Device> devices() {
        synchronized (lock) {
            return owned.stream().filter(Device.class::isInstance).map(Device.class::cast).toList();
        }
    }

    private static RuntimeException collect(RuntimeException failure, String what, Exception e) {
        if (failure == null) {
            return new IllegalStateException(what, e);
        }
        failure.addSuppressed(e);
        return failure;
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
                IllegalStateException e = new IllegalStateException(t.getName() + " did not stop within " + JOIN_TIMEOUT_MS + " ms");
                e.setStackTrace(t.getStackTrace()); // where it is held, the useful part
                throw e;
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

    /**
     * Stops the machine and frees everything it holds, in this order: the vCPU threads stop; the owned
     * resources (devices first among them, the last attached first) close, each given a bounded time,
     * which joins their threads; what devices left registered through their contexts is removed; the
     * vCPUs and the platform close; and last the guest memory is unmapped, only if every vCPU and device
     * thread is gone. Throws, once everything it could free is freed, if any step failed. Called from
     * a device's own thread, it cannot wait for that thread, so the memory then stays mapped: devices
     * end the machine with {@link #requestExit} and leave closing to the host program.
     */
    @Override
    public void close() {
        synchronized (lock) {
            if (state == State.CLOSED) {
                return;
            }
        }
        boolean stopped = false;
        RuntimeException failure = null;
        try {
            stop();
            stopped = true;
        } catch (RuntimeException e) {
            failure = e;
        } finally {
            synchronized (lock) {
                state = State.CLOSED;
            }
            if (!stopped) {
                LOG.log(Level.ERROR, "machine " + name + " closed with a vCPU thread still running");
            }
            try {
                release(stopped);
            } catch (RuntimeException e) {
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

    /** Sets how long one owned resource's close() may take (tests make it short). */
    void closeTimeout(Duration timeout) {
        closeTimeoutMs = Math.max(1, timeout.toMillis());
    }

    private void closeQuietly() {
        release(true);
    }

    private void release(boolean vcpusStopped) {
        List<AutoCloseable> resources;
        List<MachineDeviceContext> deviceContexts;
        synchronized (lock) {
            resources = new ArrayList<>(owned.reversed());
            owned.clear();
            deviceContexts = List.copyOf(contexts);
        }
        RuntimeException failure = null;
        boolean devicesClosed = true;
        for (AutoCloseable r : resources) {
            Exception e = closeBounded(r);
            if (e != null) {
                devicesClosed = false;
                failure = collect(failure, "closing machine " + name + " failed", e);
            }
        }
        for (MachineDeviceContext c : deviceContexts.reversed()) {
            try {
                c.closeRegistrations();
            } catch (Exception e) {
                failure = collect(failure, "closing machine " + name + " failed", e);
            }
        }
        long deadline = System.nanoTime() + closeTimeoutMs * 1_000_000;
        List<String> stillRunning = new ArrayList<>();
        for (MachineDeviceContext c : deviceContexts) {
            c.awaitThreads(deadline).forEach(t -> stillRunning.add(t.getName()));
        }
        if (!stillRunning.isEmpty()) {
            failure = collect(failure, "closing machine " + name + " failed",
                    new IllegalStateException("device threads still running after their devices closed: " + stillRunning));
        }
        List<AutoCloseable> rest = new ArrayList<>(vcpus.reversed());
        rest.add(platform);
        boolean unmap = vcpusStopped && devicesClosed && stillRunning.isEmpty();
        if (unmap) {
            rest.add(memory);
        } else {
            // A thread may still touch guest memory: leave it mapped rather than crash the JVM.
            LOG.log(Level.ERROR, "machine " + name + ": guest memory stays mapped, since "
                    + (!vcpusStopped ? "a vCPU thread" : !devicesClosed ? "a device that did not close" : "thread(s) " + stillRunning)
                    + " may still touch it");
        }
        for (AutoCloseable r : rest) {
            try {
                r.close();
            } catch (Exception e) {
                failure = collect(failure, "closing machine " + name + " failed", e);
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    /**
     * Closes {@code resource} on a thread of its own and waits up to the close timeout: a device stuck
     * in its backend must not hang the host program. Returns what went wrong, or null.
     */
    private Exception closeBounded(AutoCloseable resource) {
        AtomicReference<Throwable> thrown = new AtomicReference<>();
        Thread closer = new Thread(() -> {
            try {
                resource.close();
            } catch (Throwable t) {
                thrown.set(t);
            }
        }, name + "-closing");
        closer.setDaemon(true);
        closer.start();
        long deadline = System.nanoTime() + closeTimeoutMs * 1_000_000;
        boolean interrupted = false;
        while (closer.isAlive()) {
            long left = (deadline - System.nanoTime()) / 1_000_000;
            if (left <= 0) {
                break;
            }
            try {
                closer.join(left);
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (closer.isAlive()) {
            String what = resource instanceof Device d ? "device " + d.name() : String.valueOf(resource);
            return new IllegalStateException(what + " did not close within " + closeTimeoutMs + " ms");
        }
        Throwable t = thrown.get();
        if (t instanceof Exception e) {
            return e;
        }
        if (t != null) {
            return new IllegalStateException("closing " + resource + " failed", t);
        }
        return null;
    }
}
