package dev.kindling.kvm.platform;

import dev.kindling.irq.MsiVector;
import dev.kindling.kvm.RoutingEntry;
import dev.kindling.kvm.Vm;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.Poller;

/**
 * An MSI vector on its own GSI: the GSI is routed to the message, and the irqfd (its own eventfd, or
 * one of the caller's, such as an ivshmem peer's) is assigned to the
 * GSI only while the vector is configured and unmasked. While it is not, KVM does not consume the
 * eventfd, so signals accumulate in its counter: that is the pending bit, and unmasking delivers
 * them once.
 */
final class KvmMsiVector implements MsiVector {
    private final KvmInterrupts owner;
    private final Vm vm;
    private final GsiRouting routing;
    private final int gsi;
    private final EventFd irqfd;
    private final boolean ownsIrqfd; // false: the caller's eventfd, left open

    // guarded by this
    private long address;
    private int data;
    private boolean configured;
    private boolean masked = true;
    private boolean assigned;
    private boolean closed;

    KvmMsiVector(KvmInterrupts owner, Vm vm, GsiRouting routing, int gsi, EventFd irqfd, boolean ownsIrqfd) {
        this.owner = owner;
        this.vm = vm;
        this.routing = routing;
        this.gsi = gsi;
        this.irqfd = irqfd;
        this.ownsIrqfd = ownsIrqfd;
    }

    int gsi() {
        return gsi;
    }

    @Override
    public synchronized void configure(long address, int data) {
        checkOpen();
        this.address = address;
        this.data = data;
        this.configured = true;
        update();
    }

    @Override
    public synchronized void setMasked(boolean masked) {
        checkOpen();
        this.masked = masked;
        update();
    }

    @Override
    public synchronized boolean masked() {
        return masked;
    }

    @Override
    public synchronized boolean pending() {
        return !closed && !assigned && Poller.waitReadable(irqfd.fd(), 0);
    }

    /** Lock-free: one write(2) to the eventfd, which KVM turns into the interrupt (or holds while masked). */
    @Override
    public void trigger() {
        irqfd.signal();
    }

    @Override
    public EventFd irqfd() {
        return irqfd;
    }

    private void update() {
        boolean deliver = configured && !masked;
        if (configured) {
            routing.set(gsi, new RoutingEntry.Msi(gsi, address, data));
        }
        if (deliver && !assigned) {
            // what arrived while masked, delivered once below; a caller's eventfd may be blocking
            long held = irqfd.await(0) ? irqfd.read() : 0;
            try {
                vm.registerIrqfd(irqfd, gsi);
            } catch (RuntimeException e) {
                if (held > 0) {
                    irqfd.signal(held);
                }
                throw e;
            }
            assigned = true;
            if (held > 0) {
                irqfd.signal();
            }
        } else if (!deliver && assigned) {
            vm.unregisterIrqfd(irqfd, gsi);
            assigned = false;
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("MSI vector on GSI " + gsi + " is closed");
        }
    }

    /** Removes the irqfd and the route and frees the GSI. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            try {
                if (owner.vmOpen()) {
                    if (assigned) {
                        vm.unregisterIrqfd(irqfd, gsi);
                    }
                    routing.remove(gsi);
                }
            } finally {
                assigned = false;
                if (ownsIrqfd) {
                    irqfd.close();
                }
            }
        }
        owner.freed(this);
    }

    /** The VM is gone, and with it the irqfd and the route. */
    synchronized void release() {
        closed = true;
        assigned = false;
        if (ownsIrqfd) {
            irqfd.close();
        }
    }
}
