package dev.kindling.machine;

import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;
import dev.kindling.bus.AddressSpace;
import dev.kindling.bus.Bus;
import dev.kindling.device.IoEvent;
import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.memory.MemorySlot;
import dev.kindling.sys.EventFd;
import java.lang.foreign.MemorySegment;
import java.util.OptionalLong;

/**
 * One virtual machine on a hypervisor, as the {@link Machine} needs it. vmm-kvm implements it on
 * KVM; devices never see it.
 */
public interface Platform extends AutoCloseable, Stateful {
    /** Makes {@code region} guest RAM. */
    void addMemory(MemoryRegion region);

    /**
     * Creates vCPU {@code index} of {@code count}, whose port and MMIO exits go to {@code pio} and
     * {@code mmio} through an {@link ExitDispatch} the machine's vCPUs share; unknown MMIO addresses
     * follow {@code strictMmio} (false: reads see all ones, writes are dropped; true: the machine stops
     * with {@link StopReason.BadAccess}).
     */
    VirtualCpu createVcpu(int index, int count, Bus pio, Bus mmio, boolean strictMmio);

    /**
     * The machine's interrupt sources: lines by GSI (an irqfd each, so a device thread raises them
     * without an exit), MSI vectors and end-of-interrupt notices.
     */
    InterruptService interrupts();

    /** The line of {@code gsi}: {@code interrupts().line(gsi)}. */
    default IrqLine irqLine(int gsi) {
        return interrupts().line(gsi);
    }

    /**
     * Registers an eventfd the hypervisor signals, without an exit to user space, when the guest writes
     * {@code length} bytes to {@code address} in {@code space} (equal to {@code datamatch} when given).
     * Such writes no longer reach the bus. Closing the registration removes it; closing the platform
     * closes any still registered.
     */
    IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch);

    /**
     * As {@link #ioEvent(AddressSpace, long, int, OptionalLong)}, signalling {@code signal}, an eventfd
     * that stays the caller's (another process's, such as an ivshmem peer's): closing the registration
     * does not close it, and the caller closes the registration first. Unsupported unless the platform
     * says otherwise.
     */
    default IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch, EventFd signal) {
        throw new UnsupportedOperationException("this platform cannot signal a caller's eventfd on a guest write");
    }

    /**
     * Maps {@code host} at {@code guestAddress} as device memory (not RAM): a slot that may move or be
     * removed at run time, read-only if asked (guest writes then exit as MMIO and reach the MMIO bus).
     * Address and size must be page-aligned and overlap neither RAM nor another slot.
     */
    MemorySlot mapMemory(long guestAddress, MemorySegment host, boolean readOnly);

    /** The most vCPUs one VM may have. */
    int maxVcpus();

    /**
     * Saves the VM-wide state the hypervisor keeps (its clock, an in-kernel irqchip and PIT), with a
     * signature of the host CPU, so that a restore on another CPU model is refused.
     */
    @Override
    default void saveState(StateWriter out) {
        throw new SnapshotException(getClass().getSimpleName() + " cannot be snapshotted");
    }

    /** Restores {@link #saveState}'s state into this new VM, before its vCPUs run. */
    @Override
    default void restoreState(StateReader in) {
        throw new SnapshotException(getClass().getSimpleName() + " cannot be restored from a snapshot");
    }

    @Override
    void close();
}
