package dev.kindling.devices.vfio;

import dev.kindling.sys.EventFd;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * The kernel side of a passed-through platform device, as VFIO offers it: its regions (read,
 * written, or mapped), its interrupts (each signalling an eventfd; a level one masked by the host
 * when it fires until it is unmasked), a reset, and the IOMMU mappings the device's DMA goes through.
 * {@link VfioPlatformBackend} is the real one; tests put an in-process device behind it.
 */
public interface PlatformDeviceBackend extends AutoCloseable {
    /** One region of the device. */
    record Region(int index, long size, boolean readable, boolean writable, boolean mmappable) {
        public Region {
            if (size <= 0) {
                throw new IllegalArgumentException("region " + index + " has size " + size);
            }
        }
    }

    /** One interrupt: {@code level} when the host masks it as it fires (VFIO_IRQ_INFO_AUTOMASKED). */
    record Irq(int index, boolean level) {}

    String name();

    /**
     * The device's {@code compatible} strings, most specific first, for the guest's device tree (the
     * host's device tree node's; empty if the host has none).
     */
    default List<String> compatible() {
        return List.of();
    }

    List<Region> regions();

    List<Irq> irqs();

    /**
     * The host memory of a {@link Region#mmappable()} region, whole pages from its start (the last one
     * partly the region's); valid until {@link #close()}.
     */
    MemorySegment map(int region);

    /** Reads {@code size} (1, 2, 4 or 8) bytes at {@code offset} of {@code region}, little-endian. */
    long read(int region, long offset, int size);

    void write(int region, long offset, int size, long value);

    /** {@code trigger} is signalled each time interrupt {@code irq} fires; null stops it. */
    void setTrigger(int irq, EventFd trigger);

    /** A signal on {@code unmask} unmasks level interrupt {@code irq} (in the kernel, no call of ours); null stops it. */
    void setUnmaskEventFd(int irq, EventFd unmask);

    /** Unmasks level interrupt {@code irq} now. */
    void unmask(int irq);

    /** Lets the device's DMA reach {@code host} at {@code iova} (guest RAM at its guest-physical address). */
    void mapDma(long iova, MemorySegment host);

    /** Resets the device, if it can be. */
    void reset();

    /** Stops every interrupt, undoes the DMA mappings and releases the device. */
    @Override
    void close();
}
