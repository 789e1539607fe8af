package dev.kindling.device;

import dev.kindling.bus.AddressSpace;
import dev.kindling.sys.EventFd;

/**
 * A registered ioeventfd: the hypervisor signals {@link #eventFd()} when the guest writes the
 * address, without an exit to user space. {@link #close()} removes the registration, then closes the
 * eventfd; a virtio reset or a BAR move does that and registers anew.
 */
public interface IoEvent extends AutoCloseable {
    AddressSpace space();

    long address();

    EventFd eventFd();

    @Override
    void close();
}
