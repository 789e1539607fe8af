package dev.kindling.testing;

import dev.kindling.bus.AddressSpace;
import dev.kindling.device.IoEvent;
import dev.kindling.sys.EventFd;
import java.util.OptionalLong;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * An ioeventfd registration without KVM, for fake platforms and device contexts: a real non-blocking
 * eventfd that nothing signals but the test (as KVM would on the guest's write), what was asked for,
 * and whether it was removed. {@code onClose} runs on the first close (a fake's own record keeping).
 */
public final class FakeIoEvent implements IoEvent {
    private final AddressSpace space;
    private final long address;
    private final int length;
    private final OptionalLong datamatch;
    private final Runnable onClose;
    private final EventFd fd = EventFd.nonBlocking();
    private final AtomicBoolean closed = new AtomicBoolean();

    public FakeIoEvent(AddressSpace space, long address, int length, OptionalLong datamatch, Runnable onClose) {
        this.space = space;
        this.address = address;
        this.length = length;
        this.datamatch = datamatch;
        this.onClose = onClose;
    }

    public FakeIoEvent(AddressSpace space, long address, int length, OptionalLong datamatch) {
        this(space, address, length, datamatch, () -> {});
    }

    @Override
    public AddressSpace space() {
        return space;
    }

    @Override
    public long address() {
        return address;
    }

    public int length() {
        return length;
    }

    public OptionalLong datamatch() {
        return datamatch;
    }

    @Override
    public EventFd eventFd() {
        return fd;
    }

    public boolean closed() {
        return closed.get();
    }

    @Override
    public void close() {
        if (!closed.getAndSet(true)) {
            onClose.run();
            fd.close();
        }
    }
}
