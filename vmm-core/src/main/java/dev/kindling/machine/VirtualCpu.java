package dev.kindling.machine;

import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;
import dev.kindling.boot.BootCpuState;

/**
 * One vCPU of a {@link Platform}. {@link #run()} enters the guest and handles ordinary exits (port
 * and MMIO accesses go to the machine's buses) until the machine has to act. It is called only from
 * the vCPU's own thread; {@link #kick()} may be called from any thread.
 */
public interface VirtualCpu extends AutoCloseable, Stateful {
    int index();

    /** Sets registers for the first instruction (the boot CPU's entry); before {@link #run()}. */
    void setBootState(BootCpuState state);

    /** Runs the guest until it is kicked or ends. */
    VcpuEvent run();

    /**
     * Makes a current or the next {@link #run()} return {@link VcpuEvent.Kicked} promptly. Safe to
     * call at any time, from any thread.
     */
    void kick();

    /**
     * Saves everything of the vCPU the guest can tell: registers, FPU and extended state, MSRs, the
     * local APIC, its run state and pending events. Called with the vCPU parked (not in {@link #run()}).
     */
    @Override
    default void saveState(StateWriter out) {
        throw new SnapshotException(getClass().getSimpleName() + " cannot be snapshotted");
    }

    /** Restores {@link #saveState}'s state, instead of {@link #setBootState}, before the first {@link #run()}. */
    @Override
    default void restoreState(StateReader in) {
        throw new SnapshotException(getClass().getSimpleName() + " cannot be restored from a snapshot");
    }

    @Override
    void close();
}
