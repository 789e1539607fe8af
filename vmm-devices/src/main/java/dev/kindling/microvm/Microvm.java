package dev.kindling.microvm;

import dev.kindling.boot.DirectBoot;
import dev.kindling.bus.AddressSpace;
import dev.kindling.bus.BusRange;
import dev.kindling.devices.legacy.Serial16550;
import dev.kindling.devices.pci.PciBar;
import dev.kindling.devices.pci.PciHostBridge;
import dev.kindling.devices.virtio.vsock.Vsock;
import dev.kindling.machine.DeviceError;
import dev.kindling.machine.Machine;
import dev.kindling.machine.StopReason;
import dev.kindling.snapshot.SnapshotException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A microVM built by {@link MicrovmBuilder}. Like a {@link Process}: {@link #start()} it, learn when
 * and why it ends from {@link #onExit()} or {@link #awaitExit(Duration)}, talk to it through its
 * {@link #console()}, and {@link #close()} it, which frees everything it holds (threads, descriptors,
 * mappings).
 *
 * <pre>{@code
 * try (Microvm vm = Microvm.builder().kernel(Path.of("vmlinux")).cmdline("console=ttyS0").build()) {
 *     vm.start();
 *     vm.console().awaitText("login:", Duration.ofSeconds(30));
 *     vm.console().send("root\n");
 *     StopReason why = vm.awaitExit(Duration.ofMinutes(1)).orElseThrow();
 * }
 * }</pre>
 *
 * <p>The guest ends by resetting or powering off ({@link StopReason#isClean()}), by failing (a triple
 * fault, an internal error), or because the host stopped it. The end is reported once the console
 * has everything the guest wrote before it.
 */
public final class Microvm implements AutoCloseable {
    /** Kindling's version, which on-disk snapshots record: another version's are refused. */
    public static final String VERSION = "0.1.0";
    private final Machine machine;
    private final Console console;
    private final List<IoMapEntry> kvmOwned;
    private final String cmdline;
    private final DirectBoot.Protocol bootProtocol;
    private final CompletableFuture<StopReason> exit = new CompletableFuture<>();
    private final Vsock vsock;
    private final PciHostBridge pci; // null: no PCI
    /** The configuration it was built with, which its snapshots' clones are built with. */
    private final MicrovmBuilder recipe;

    Microvm(Machine machine, Console console, Serial16550 serial, List<IoMapEntry> kvmOwned, String cmdline,
            DirectBoot.Protocol bootProtocol, Vsock vsock, PciHostBridge pci, MicrovmBuilder recipe) {
        this.vsock = vsock;
        this.pci = pci;
        this.recipe = recipe;
        this.machine = machine;
        this.console = console;
        this.kvmOwned = List.copyOf(kvmOwned);
        this.cmdline = cmdline;
        this.bootProtocol = bootProtocol;
        machine.onExit().thenAccept(reason -> {
            if (serial == null) {
                ended(reason);
            } else {
                serial.whenOutputDrained(() -> ended(reason));
            }
        });
    }

    private void ended(StopReason reason) {
        console.end();
        exit.complete(reason);
    }

    public static MicrovmBuilder builder() {
        return new MicrovmBuilder();
    }

    /** Starts the vCPUs. Only once: a microVM is not restarted. */
    public void start() {
        machine.start();
    }

    /** Parks every vCPU; returns once all are parked. No-op unless running. */
    public void pause() {
        machine.pause();
    }

    public void resume() {
        machine.resume();
    }

    /**
     * Where the microVM is: CREATED, RUNNING, PAUSED, STOPPED once it ended and its console has all
     * the guest wrote ({@link #onExit()} is complete), CLOSED.
     */
    public Machine.State state() {
        Machine.State s = machine.state();
        return s == Machine.State.STOPPED && !exit.isDone() ? Machine.State.RUNNING : s;
    }

    /**
     * A future that completes with why the guest ended, once the console has everything it wrote. Each
     * call returns a new copy: completing or cancelling it affects no one else. Stages added without an
     * executor may run on a Kindling thread (a vCPU's or the console's): keep them short, or use the
     * {@code ...Async} variants.
     */
    public CompletableFuture<StopReason> onExit() {
        return exit.copy();
    }

    /**
     * Waits up to {@code timeout} for the guest to end and for its last output to reach the console;
     * empty if that has not happened by then (as {@link #state()} still says RUNNING).
     */
    public Optional<StopReason> awaitExit(Duration timeout) throws InterruptedException {
        try {
            return Optional.of(exit.get(timeout.toNanos(), TimeUnit.NANOSECONDS));
        } catch (TimeoutException e) {
            return Optional.empty();
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause()); // never: only complete() is called
        }
    }

    /** Ends the guest now and waits for its vCPUs to leave. */
    public void stop() {
        machine.stop();
    }

    /**
     * Takes a snapshot in memory: pauses the guest (if it runs) while its vCPU and device state is saved,
     * its memory copied into a sealed memfd and its writable disks copied (reflinked where the file
     * system can), then lets it go on. {@link Snapshot#clone()} starts copies of it. Close the snapshot
     * to free them; clones made from it are not affected.
     *
     * @throws SnapshotException if a device of this microVM cannot be snapshotted (a network interface,
     *     a device of the caller's own) or the state cannot be saved; the guest goes on as before
     * @throws IllegalStateException unless it was started and has not ended
     */
    public Snapshot snapshot() {
        recipe.checkSnapshottable();
        Machine.State was = requireStarted();
        machine.pause();
        try {
            return Snapshot.take(this, recipe);
        } finally {
            if (was == Machine.State.RUNNING) {
                machine.resume();
            }
        }
    }

    /**
     * Writes a snapshot to {@code dir} (made if missing), as {@link #snapshot()} but on disk: the
     * configuration and machine state in a versioned, checksummed state file, guest memory in a sparse
     * memory file, copies of the writable disks. The guest is paused meanwhile, then goes on.
     * {@link #restore(Path, SnapshotOverrides)} brings it back, in this JVM or another.
     *
     * @throws SnapshotException as {@link #snapshot()}, or if the files cannot be written
     */
    public void snapshot(Path dir) {
        recipe.checkSnapshottable();
        Machine.State was = requireStarted();
        machine.pause();
        try {
            SnapshotDir.write(this, recipe, dir);
        } finally {
            if (was == Machine.State.RUNNING) {
                machine.resume();
            }
        }
    }

    /** {@link #restore(Path, SnapshotOverrides)} with no overrides. */
    public static Microvm restore(Path dir) {
        return restore(dir, SnapshotOverrides.none());
    }

    /**
     * Restores the snapshot {@link #snapshot(Path)} wrote to {@code dir} and starts it: it goes on from
     * the moment of the snapshot, with its memory mapped privately from the memory file (read lazily;
     * the file is never written), its writable disks on the snapshot's copies (which it writes) unless
     * {@code overrides} names others, and a console of its own.
     *
     * @throws SnapshotException if the snapshot is missing, corrupted, truncated, from another Kindling
     *     version or another host CPU model; nothing is left open
     */
    public static Microvm restore(Path dir, SnapshotOverrides overrides) {
        Microvm vm = SnapshotDir.restore(dir, overrides);
        try {
            vm.start();
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
        return vm;
    }

    private Machine.State requireStarted() {
        Machine.State was = machine.state();
        if (was != Machine.State.RUNNING && was != Machine.State.PAUSED) {
            throw new IllegalStateException("microVM " + machine.name() + " is " + was.name().toLowerCase()
                    + ": only a started microVM is snapshotted");
        }
        return was;
    }

    /** The guest's serial console: its output, and input to it. */
    public Console console() {
        return console;
    }

    /**
     * The host side of the guest's vsock device: {@link Vsock#connect(int)} to the guest's ports,
     * {@link Vsock#listen(int)} for its connections.
     *
     * @throws IllegalStateException if the microVM has none ({@link MicrovmBuilder#vsock(long)} adds it)
     */
    public Vsock vsock() {
        if (vsock == null) {
            throw new IllegalStateException("this microVM has no vsock device: add one with MicrovmBuilder.vsock(cid)");
        }
        return vsock;
    }

    /** The kernel command line the guest got (with the automatic entries). */
    public String cmdline() {
        return cmdline;
    }

    public DirectBoot.Protocol bootProtocol() {
        return bootProtocol;
    }

    /**
     * Every I/O port range and MMIO range the guest can reach, by address; with PCI, also where each
     * BAR decodes now (inside the bridge's windows, named like {@code "ivshmem0 BAR2"}).
     */
    public List<IoMapEntry> ioMap() {
        List<IoMapEntry> all = new ArrayList<>(kvmOwned);
        if (pci != null) {
            for (PciHostBridge.Placement p : pci.placements()) {
                all.add(new IoMapEntry(p.kind() == PciBar.Kind.IO ? AddressSpace.PIO : AddressSpace.MMIO, p.address(), p.size(),
                        p.function() + " BAR" + p.bar(), IoMapEntry.Owner.KINDLING));
            }
        }
        for (BusRange r : machine.pio().ranges()) {
            all.add(new IoMapEntry(AddressSpace.PIO, r.base(), r.length(), r.device().name(), IoMapEntry.Owner.KINDLING));
        }
        for (BusRange r : machine.mmio().ranges()) {
            all.add(new IoMapEntry(AddressSpace.MMIO, r.base(), r.length(), r.device().name(), IoMapEntry.Owner.KINDLING));
        }
        all.sort(Comparator.comparing(IoMapEntry::space).thenComparingLong(IoMapEntry::base));
        return all;
    }

    /**
     * The fatal errors devices reported (a disk's backend failed, say), oldest first; the guest and
     * the VMM carried on. Each device's first one was also logged at ERROR.
     */
    public List<DeviceError> deviceErrors() {
        return machine.deviceErrors();
    }

    /** The machine underneath, for what this handle does not cover. */
    public Machine machine() {
        return machine;
    }

    /** Stops the guest if it runs and frees everything; {@link #onExit()} is complete afterwards. */
    @Override
    public void close() {
        try {
            machine.close();
        } finally {
            StopReason reason = machine.onExit().getNow(null); // set by now, unless a vCPU thread is stuck
            if (reason != null) {
                ended(reason);
            }
        }
    }
}
