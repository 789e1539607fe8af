package dev.kindling.machine;

import dev.kindling.bus.AddressSpace;
import dev.kindling.bus.Bus;
import dev.kindling.device.IoEvent;
import dev.kindling.irq.IrqLine;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.memory.MemorySlot;
import java.lang.foreign.MemorySegment;
import java.util.OptionalLong;

/**
 * One virtual machine on a hypervisor, as the {@link Machine} needs it. vmm-kvm implements it on
 * KVM; devices never see it.
 */
public interface Platform extends AutoCloseable {
    /** Makes {@code region} guest RAM. */
    void addMemory(MemoryRegion region);

    /**
     * Creates vCPU {@code index} of {@code count}, whose port and MMIO exits go to {@code pio} and
     * {@code mmio}; unknown MMIO addresses follow {@code strictMmio} (false: reads see all ones, writes
     * are dropped; true: the machine stops with {@link StopReason.BadAccess}).
     */
    VirtualCpu createVcpu(int index, int count, Bus pio, Bus mmio, boolean strictMmio);

    /** An interrupt line into the guest's interrupt controller for {@code gsi}. */
    IrqLine irqLine(int gsi);

    /**
     * Registers an eventfd the hypervisor signals, without an exit to user space, when the guest writes
     * {@code length} bytes to {@code address} in {@code space} (equal to {@code datamatch} when given).
     * Such writes no longer reach the bus. Closing the registration removes it; closing the platform
     * closes any still registered.
     */
    IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch);

    /**
     * Maps {@code host} at {@code guestAddress} as device memory (not RAM): a slot that may move or be
     * removed at run time, read-only if asked (guest writes then exit as MMIO).
     */
    MemorySlot mapMemory(long guestAddress, MemorySegment host, boolean readOnly);

    /** The most vCPUs one VM may have. */
    int maxVcpus();

    @Override
    void close();
}
