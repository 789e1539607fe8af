package dev.kindling.kvm.platform;

import dev.kindling.irq.IrqLine;
import dev.kindling.kvm.RoutingEntry;
import dev.kindling.kvm.Vm;
import dev.kindling.sys.EventFd;
import java.lang.System.Logger.Level;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.IntFunction;

/**
 * Interrupts on a split irqchip: the IOAPIC (and the PIC, for ISA IRQs) are the VMM's models, the
 * local APICs KVM's. Each pin's GSI is routed to the MSI the guest programmed into that pin, as QEMU
 * does. A line's edge goes through an irqfd on the GSI, with no exit and no Java lock, while the pin
 * is unmasked and edge-triggered; otherwise (masked, not yet programmed, level-triggered) it goes to
 * the model, which keeps it pending or tracks Remote IRR, so no edge is lost in KVM. Levels always go
 * to the model. Edges that reach the irqfd just as the guest masks the pin are read back from the
 * eventfd and handed to the model. A masked pin keeps its route, so that KVM still reports the EOI
 * of its vector.
 */
final class SplitIrqchipInterrupts extends KvmInterrupts implements IoapicLink {
    private static final System.Logger LOG = System.getLogger(SplitIrqchipInterrupts.class.getName());
    private static final int MSI_DATA_LEVEL = 1 << 15;
    private static final int PIC_IRQS = 16;

    private final Line[] lines;
    private final Pin[] pinState;
    private final Map<Integer, List<Runnable>> eoiListeners = new ConcurrentHashMap<>();
    private final Set<Runnable> failedListeners = ConcurrentHashMap.newKeySet();
    private volatile IoapicModel model;
    /** The PIC's inputs for ISA IRQs 0-15, or null without a PIC. */
    private volatile IrqLine[] picInputs;

    SplitIrqchipInterrupts(Vm vm, GsiRouting routing, int pins) {
        super(vm, routing, pins);
        lines = new Line[pins];
        pinState = new Pin[pins];
        for (int i = 0; i < pins; i++) {
            lines[i] = new Line(i);
            pinState[i] = new Pin();
        }
    }

    synchronized IoapicLink connect(IoapicModel ioapic, IntFunction<IrqLine> pic) {
        Objects.requireNonNull(ioapic, "ioapic");
        if (model != null) {
            throw new IllegalStateException("an IOAPIC model is connected already");
        }
        if (pic != null) {
            IrqLine[] inputs = new IrqLine[PIC_IRQS];
            for (int irq = 0; irq < PIC_IRQS; irq++) {
                inputs[irq] = Objects.requireNonNull(pic.apply(irq), "PIC input " + irq);
            }
            picInputs = inputs;
        }
        model = ioapic;
        return this;
    }

    private IoapicModel model() {
        IoapicModel m = model;
        if (m == null) {
            throw new IllegalStateException("no IOAPIC model is connected to the split irqchip (KvmPlatform.connectIoapic)");
        }
        return m;
    }

    @Override
    public IrqLine line(int gsi) {
        checkPin(gsi, "line");
        return lines[gsi];
    }

    @Override
    public AutoCloseable onEndOfInterrupt(int gsi, Runnable listener) {
        checkPin(gsi, "end-of-interrupt listener");
        Objects.requireNonNull(listener, "listener");
        List<Runnable> l = eoiListeners.computeIfAbsent(gsi, g -> new CopyOnWriteArrayList<>());
        l.add(listener);
        return () -> l.remove(listener);
    }

    @Override
    void endOfInterruptExit(int vector) {
        IoapicModel m = model;
        if (m != null) {
            m.endOfInterrupt(vector);
        }
    }

    // ---- IoapicLink

    @Override
    public void deliver(long address, int data) {
        vm.signalMsi(address, data);
    }

    @Override
    public void pinChanged(int pin, long address, int data, boolean masked) {
        checkPin(pin, "IOAPIC pin");
        boolean direct = !masked && (data & MSI_DATA_LEVEL) == 0;
        Pin p = pinState[pin];
        long inFlight = 0;
        synchronized (p) {
            if (!direct && p.active != null) {
                // KVM stops taking the eventfd before the route goes: an edge in between stays in its
                // counter for the model instead of meeting a GSI without a route
                p.active = null; // from here on, edges go to the model
                vm.unregisterIrqfd(p.fd, pin);
                inFlight = p.fd.read();
            }
            // A masked pin keeps the route it had, as QEMU's does: KVM reports the EOI of a level-triggered
            // vector only for vectors of its routes, and Linux masks pins whose interrupt is in service (a
            // handler's disable_irq, a oneshot line): without the route that EOI never came, and Remote
            // IRR stayed set. No irqfd delivers through a masked pin's route.
            if (!masked) {
                routing.set(pin, new RoutingEntry.Msi(pin, address, data));
            }
            if (direct && p.active == null) {
                if (p.fd == null) {
                    p.fd = EventFd.nonBlocking();
                }
                vm.registerIrqfd(p.fd, pin);
                p.active = p.fd;
            }
        }
        if (inFlight > 0) {
            IoapicModel m = model();
            m.setPin(pin, true);
            m.setPin(pin, false);
        }
    }

    @Override
    public void endOfInterrupt(int pin) {
        checkPin(pin, "IOAPIC pin");
        List<Runnable> l = eoiListeners.get(pin);
        if (l == null) {
            return;
        }
        for (Runnable r : l) {
            try {
                r.run();
            } catch (RuntimeException e) {
                if (failedListeners.add(r)) {
                    LOG.log(Level.WARNING, "end-of-interrupt listener " + r + " of GSI " + pin
                            + " failed (further failures are not logged)", e);
                }
            }
        }
    }

    @Override
    void release() {
        super.release();
        for (Pin p : pinState) {
            synchronized (p) {
                p.active = null;
                if (p.fd != null) {
                    p.fd.close();
                }
            }
        }
    }

    /** The irqfd of one pin; {@code active} while KVM consumes it. */
    private static final class Pin {
        EventFd fd;
        volatile EventFd active;
    }

    private final class Line implements IrqLine {
        private final int gsi;

        Line(int gsi) {
            this.gsi = gsi;
        }

        @Override
        public int gsi() {
            return gsi;
        }

        @Override
        public void pulse() {
            IrqLine[] pic = picInputs;
            if (pic != null && gsi < PIC_IRQS) {
                pic[gsi].pulse();
            }
            EventFd direct = pinState[gsi].active;
            if (direct != null) {
                direct.signal();
            } else {
                IoapicModel m = model();
                m.setPin(gsi, true);
                m.setPin(gsi, false);
            }
        }

        @Override
        public void set(boolean level) {
            IrqLine[] pic = picInputs;
            if (pic != null && gsi < PIC_IRQS) {
                pic[gsi].set(level);
            }
            model().setPin(gsi, level);
        }

        @Override
        public String toString() {
            return "split-irqchip gsi " + gsi;
        }
    }
}
