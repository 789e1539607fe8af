package dev.kindling.machine;

import dev.kindling.bus.Bus;
import dev.kindling.irq.IrqLine;
import dev.kindling.memory.MemoryRegion;

/**
 * One virtual machine on a hypervisor, as the {@link Machine} needs it. vmm-kvm implements it on
 * KVM; devices never see it.
 */
public interface Platform extends AutoCloseable {
    /** Makes {@code region} guest RAM. */
    void addMemory(MemoryRegion region);

    /**
     * Creates vCPU {@code index}, whose port and MMIO exits go to {@code pio} and {@code mmio};
     * unknown addresses follow {@code strictMmio} (false: reads see all ones, writes are dropped).
     */
    VirtualCpu createVcpu(int index, Bus pio, Bus mmio, boolean strictMmio);

    /** An interrupt line into the guest's interrupt controller for {@code gsi}. */
    IrqLine irqLine(int gsi);

    /** The most vCPUs one VM may have. */
    int maxVcpus();

    @Override
    void close();
}
