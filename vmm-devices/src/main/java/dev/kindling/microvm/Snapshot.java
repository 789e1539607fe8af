package dev.kindling.microvm;

import dev.kindling.boot.DirectBoot;
import dev.kindling.machine.MachineState;
import dev.kindling.snapshot.FileCopy;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.sys.Fd;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * A microVM frozen in memory by {@link Microvm#snapshot()}: its vCPU and device state, its memory in a
 * sealed memfd and copies of its writable disks. {@link #clone()} starts a new microVM that goes on from
 * that moment: its memory is a private copy-on-write mapping of the memfd, so a clone costs host memory
 * only for the pages it writes; its disks are copies of the snapshot's; its console is its own.
 * Thread-safe. Closing the snapshot frees the memfd and the disk copies; running clones keep what they map.
 */
public final class Snapshot implements AutoCloseable {
    private final MicrovmBuilder recipe;
    private final MachineState state;
    private final Fd memory;
    private final List<Path> disks;
    private final Path dir;
    private final DirectBoot.Protocol protocol;
    private final AtomicInteger clones = new AtomicInteger();
    private final Object lock = new Object();
    private boolean closed;

    private Snapshot(MicrovmBuilder recipe, MachineState state, Fd memory, List<Path> disks, Path dir,
                     DirectBoot.Protocol protocol) {
        this.recipe = recipe;
        this.state = state;
        this.memory = memory;
        this.disks = List.copyOf(disks);
        this.dir = dir;
        this.protocol = protocol;
    }

    /** Saves {@code vm}, which the caller has paused. */
    static Snapshot take(Microvm vm, MicrovmBuilder recipe) {
        MachineState state = vm.machine().saveState();
        Path dir = null;
        Fd memory = null;
        try {
            memory = vm.machine().memory().saveToMemfd(recipe.name() + "-snapshot");
            dir = Files.createTempDirectory("kindling-snapshot-");
            List<Path> disks = copyDisks(recipe.writableDisks(), dir);
            return new Snapshot(recipe.copy(), state, memory, disks, dir, vm.bootProtocol());
        } catch (IOException | RuntimeException e) {
            if (memory != null) {
                memory.close();
            }
            deleteTree(dir);
            if (e instanceof SnapshotException s) {
                throw s;
            }
            throw new SnapshotException("taking a snapshot of " + recipe.name() + " failed: " + e.getMessage(), e);
        }
    }

    private static List<Path> copyDisks(List<Path> from, Path dir) throws IOException {
        List<Path> copies = new ArrayList<>();
        for (int i = 0; i < from.size(); i++) {
            Path to = dir.resolve("disk" + i + ".img");
            FileCopy.copy(from.get(i), to);
            copies.add(to);
        }
        return copies;
    }

    /**
     * Starts a clone: a new microVM, running, that goes on from the snapshot's moment with the same
     * configuration but copies of the disks, a console of its own and no vsock Unix socket (its
     * {@link Microvm#vsock()} works in-process).
     */
    @Override
    public Microvm clone() {
        return clone(0);
    }

    /** {@link #clone()}, with the guest's vsock CID changed to {@code vsockCid} (0: the snapshot's). */
    public Microvm clone(long vsockCid) {
        int n;
        synchronized (lock) {
            if (closed) {
                throw new IllegalStateException("the snapshot is closed");
            }
            n = clones.incrementAndGet();
        }
        Path cloneDir = null;
        try {
            cloneDir = Files.createTempDirectory("kindling-clone-");
            List<Path> cloneDisks = copyDisks(disks, cloneDir);
            MicrovmBuilder b = recipe.forRestore(recipe.name() + "-clone" + n, cloneDisks, vsockCid, null);
            Microvm vm = b.restore(state, memory, protocol);
            try {
                Path owned = cloneDir;
                vm.machine().own(() -> deleteTree(owned)); // unlinking open images is fine: they go at close
                vm.start();
            } catch (RuntimeException e) {
                vm.close();
                throw e;
            }
            return vm;
        } catch (IOException e) {
            deleteTree(cloneDir);
            throw new UncheckedIOException("cannot copy the snapshot's disks for a clone", e);
        } catch (RuntimeException e) {
            deleteTree(cloneDir);
            throw e;
        }
    }

    /** Bytes of guest memory the snapshot holds. */
    public long memoryBytes() {
        return recipe.memoryBytes();
    }

    /** The clones started so far. */
    public int cloneCount() {
        return clones.get();
    }

    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
        }
        memory.close();
        deleteTree(dir);
    }

    private static void deleteTree(Path dir) {
        if (dir == null || !Files.exists(dir)) {
            return;
        }
        try (Stream<Path> all = Files.walk(dir)) {
            for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            System.getLogger(Snapshot.class.getName()).log(System.Logger.Level.WARNING, "cannot delete " + dir, e);
        }
    }
}
