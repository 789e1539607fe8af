package dev.kindling.snapshot;

/**
 * A part of a machine whose state a snapshot saves: a device model, a vCPU, the hypervisor's VM.
 * {@link #saveState} runs with the machine paused (vCPUs parked, devices quiesced);
 * {@link #restoreState} runs on a freshly made part of the same configuration before its machine
 * starts, and leaves it as the saved one was, so the guest goes on where it stopped.
 */
public interface Stateful {
    void saveState(StateWriter out);

    /**
     * Reads what {@link #saveState} wrote. A state the part cannot take (short, out of range) throws
     * {@link SnapshotException} naming what is wrong.
     */
    void restoreState(StateReader in);
}
