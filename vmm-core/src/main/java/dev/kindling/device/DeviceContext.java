package dev.kindling.device;

import dev.kindling.bus.AddressSpace;
import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemorySlot;
import dev.kindling.sys.EventFd;
import java.lang.foreign.MemorySegment;
import java.util.OptionalLong;
import java.util.concurrent.ThreadFactory;

/**
 * What the machine hands a device when it wires it: guest memory, its interrupt line and the interrupt
 * service, ioeventfds, device memory slots, named threads and a way to report a fatal error. A device
 * model depends on this interface only, so tests hand it a fake one.
 */
public interface DeviceContext {
    /** The device's name in the machine, as its threads and log lines show it. */
    String name();

    /** The guest's RAM. Accesses after the machine closed fail with an exception, never a crash. */
    GuestMemory memory();

    /** The interrupt line the machine assigned to this device; {@link #interrupts()} has any other. */
    IrqLine irq();

    /** Every interrupt source of the machine: lines by GSI, MSI vectors, end-of-interrupt notices. */
    InterruptService interrupts();

    /**
     * Registers an ioeventfd: guest writes of {@code length} bytes at {@code address} in {@code space}
     * (equal to {@code datamatch}, when given) signal its eventfd without an exit and no longer reach
     * the bus. Closing the result removes the registration.
     */
    IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch);

    /**
     * As {@link #ioEvent(AddressSpace, long, int, OptionalLong)}, signalling {@code signal}, which stays
     * the caller's: close the registration before it. {@link UnsupportedOperationException} where the
     * platform cannot; the writes then reach the bus.
     */
    default IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch, EventFd signal) {
        throw new UnsupportedOperationException("this context cannot signal a caller's eventfd on a guest write");
    }

    /**
     * Maps {@code host} into the guest at {@code guestAddress} as device memory (a BAR, a shared
     * region): not RAM, so not in the e820 map nor in {@link #memory()}. Closing the slot unmaps it.
     */
    MemorySlot mapMemory(long guestAddress, MemorySegment host, boolean readOnly);

    /** Makes daemon threads named after the machine and the device; the device joins them in close(). */
    ThreadFactory threads();

    /**
     * The device met an error it cannot recover from by itself (its backend failed). The machine logs
     * it and keeps it for the host program; the guest and the VMM carry on.
     */
    void reportFatal(String what, Throwable cause);
}
