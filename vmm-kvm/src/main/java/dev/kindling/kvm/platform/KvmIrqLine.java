package dev.kindling.kvm.platform;

import dev.kindling.irq.IrqLine;
import dev.kindling.kvm.Vm;
import dev.kindling.sys.EventFd;

/**
 * An interrupt line into KVM's in-kernel irqchip: edges go through an irqfd (no ioctl on the
 * caller's thread, KVM injects), levels through KVM_IRQ_LINE.
 */
final class KvmIrqLine implements IrqLine, AutoCloseable {
    private final Vm vm;
    private final int gsi;
    private final EventFd irqfd;

    KvmIrqLine(Vm vm, int gsi) {
        this.vm = vm;
        this.gsi = gsi;
        this.irqfd = EventFd.create();
        try {
            vm.registerIrqfd(irqfd, gsi);
        } catch (RuntimeException e) {
            irqfd.close();
            throw e;
        }
    }

    @Override
    public int gsi() {
        return gsi;
    }

    @Override
    public void pulse() {
        irqfd.signal();
    }

    @Override
    public void set(boolean level) {
        vm.irqLine(gsi, level);
    }

    /** Closes the eventfd; the VM, closed first, has dropped the irqfd registration. */
    @Override
    public void close() {
        irqfd.close();
    }
}
