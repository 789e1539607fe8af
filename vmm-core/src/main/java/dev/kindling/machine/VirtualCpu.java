package dev.kindling.machine;

import dev.kindling.boot.BootCpuState;

/**
 * One vCPU of a {@link Platform}. {@link #run()} enters the guest and handles ordinary exits (port
 * and MMIO accesses go to the machine's buses) until the machine has to act. It is called only from
 * the vCPU's own thread; {@link #kick()} may be called from any thread.
 */
public interface VirtualCpu extends AutoCloseable {
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

    @Override
    void close();
}
