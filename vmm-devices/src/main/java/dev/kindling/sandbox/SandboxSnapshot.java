package dev.kindling.sandbox;

import dev.kindling.microvm.Microvm;
import dev.kindling.microvm.Snapshot;
import java.security.SecureRandom;

/**
 * A booted sandbox frozen in memory ({@link Sandbox#snapshot()}, {@link Sandbox.Builder#snapshotAfterBoot()}).
 * {@link #newSandbox()} starts a sandbox that goes on from it in milliseconds instead of booting: its
 * memory is a copy-on-write mapping of the snapshot's, its disks are copies, its console is its own,
 * and the guest's entropy pool gets fresh host randomness. Thread-safe: start many at once.
 *
 * <p>A clone starts with no connection to its agent: commands the snapshotted sandbox was running for
 * a caller ({@code exec}, {@code start}) end in the clone as when their connection breaks, since only
 * that caller could read them. Processes of the guest's own, such as daemons, go on.
 */
public final class SandboxSnapshot implements AutoCloseable {
    private static final int ENTROPY_BYTES = 64;
    private final Snapshot snapshot;
    private final Sandbox.Settings settings;
    private final SecureRandom random = new SecureRandom();

    SandboxSnapshot(Snapshot snapshot, Sandbox.Settings settings) {
        this.snapshot = snapshot;
        this.settings = settings;
    }

    /** Starts a sandbox from the snapshot; returns once its agent answers. */
    public Sandbox newSandbox() {
        byte[] entropy = new byte[ENTROPY_BYTES];
        random.nextBytes(entropy);
        Microvm vm = snapshot.clone();
        return Sandbox.attach(vm, settings, entropy);
    }

    /** The in-memory snapshot of the VM underneath. */
    public Snapshot vmSnapshot() {
        return snapshot;
    }

    /** Frees the snapshot's memory and disk copies; sandboxes started from it go on. */
    @Override
    public void close() {
        snapshot.close();
    }
}
