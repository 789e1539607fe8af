package dev.kindling.devices.pci;

import java.util.List;
import java.util.OptionalLong;

/**
 * A PCI endpoint function behind Kindling's host bridge. The bridge keeps its configuration header
 * (ids, command and status, the BAR registers and their sizing, interrupt line and pin, the
 * capability list) and tells the function where its BARs are; the function serves accesses to them.
 * Like every device model it knows nothing of KVM: tests call these methods directly.
 *
 * <p>A BAR backed by host memory (shared RAM) maps it with
 * {@link dev.kindling.device.DeviceContext#mapMemory} when placed and moves or closes the slot when
 * the guest moves it or turns memory decoding off; accesses to such a BAR never reach
 * {@link #readBar}. Register BARs get their accesses through {@link #readBar} and {@link #writeBar}.
 */
public interface PciFunction extends AutoCloseable {
    /** A short name for logs and the I/O map, e.g. {@code "ivshmem0"}. */
    String name();

    PciId id();

    /** The BARs it decodes; fixed for its life. */
    List<PciBar> bars();

    /** The legacy interrupt pin it uses: 0 for none, 1 for INTA#. */
    int interruptPin();

    /** Its capabilities, in the order they are chained. */
    List<PciCapability> capabilities();

    /** Reads {@code size} bytes at {@code offset} into register BAR {@code bar}. */
    long readBar(int bar, long offset, int size);

    /** Writes the low {@code size} bytes of {@code value} at {@code offset} into register BAR {@code bar}. */
    void writeBar(int bar, long offset, int size, long value);

    /**
     * BAR {@code bar} now decodes at {@code address}, or no longer decodes at all (empty: the guest
     * turned decoding off or is moving it). Called before any access at the new place.
     */
    void barPlaced(int bar, OptionalLong address);

    /** The machine resets: back to the state after creation (the bridge has unplaced every BAR). */
    default void reset() {}

    /** {@link dev.kindling.device.Device#quiesce()}. */
    default void quiesce() {}

    /** {@link dev.kindling.device.Device#resume()}. */
    default void resume() {}

    /** Releases what the function holds; after this it touches no guest memory. */
    @Override
    default void close() {}
}
