package dev.kindling.kvm.platform;

import dev.kindling.irq.IrqLine;
import dev.kindling.kvm.Vm;
import dev.kindling.sys.EventFd;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Interrupts on KVM's own PIC and IOAPIC. Edges go through an irqfd per GSI and levels through
 * KVM_IRQ_LINE. End-of-interrupt notices come from a resampling irqfd (KVM_IRQFD_FLAG_RESAMPLE) on
 * the GSI: once one is registered, the line's level is asserted through that irqfd instead, KVM
 * lowers it when the guest ends the interrupt and signals the resample eventfd, and a small thread
 * per GSI runs the listeners, which re-assert the line if the device still wants service (as VFIO
 * does for INTx). A de-assertion then waits for that EOI.
 */
final class KernelIrqchipInterrupts extends KvmInterrupts {
    private static final System.Logger LOG = System.getLogger(KernelIrqchipInterrupts.class.getName());
    private static final long JOIN_MILLIS = 5_000;

    private final boolean resampleSupported;
    private final String name;
    // guarded by this
    private final Map<Integer, Line> lines = new HashMap<>();
    private final Map<Integer, Resampler> resamplers = new ConcurrentHashMap<>();
    private boolean stopped;

    KernelIrqchipInterrupts(Vm vm, GsiRouting routing, int pins, boolean resampleSupported, String name) {
        super(vm, routing, pins);
        this.resampleSupported = resampleSupported;
        this.name = name;
    }

    @Override
    public synchronized IrqLine line(int gsi) {
        checkPin(gsi, "line");
        if (stopped) {
            throw new IllegalStateException("the VM is closed");
        }
        return lines.computeIfAbsent(gsi, Line::new);
    }

    @Override
    public synchronized AutoCloseable onEndOfInterrupt(int gsi, Runnable listener) {
        checkPin(gsi, "end-of-interrupt listener");
        if (!resampleSupported) {
            throw new UnsupportedOperationException("end-of-interrupt notices on KVM's irqchip need KVM_CAP_IRQFD_RESAMPLE,"
                    + " which this host's KVM lacks");
        }
        if (stopped) {
            throw new IllegalStateException("the VM is closed");
        }
        Resampler r = resamplers.get(gsi);
        if (r == null) {
            r = new Resampler(gsi);
            resamplers.put(gsi, r);
            // From now on the line is asserted through the resampling irqfd, which KVM lowers at the
            // guest's EOI: lower what KVM_IRQ_LINE may have raised, else it would stay high for ever.
            vm.irqLine(gsi, false);
            Line line = lines.get(gsi);
            if (line != null && line.high) {
                r.trigger.signal();
            }
        }
        Resampler registered = r;
        registered.listeners.add(listener);
        return () -> registered.listeners.remove(listener);
    }

    @Override
    public synchronized AutoCloseable irqfd(int gsi, EventFd trigger, EventFd resample) {
        checkPin(gsi, "irqfd");
        Objects.requireNonNull(trigger, "trigger");
        if (resample != null && !resampleSupported) {
            throw new UnsupportedOperationException("a resampling irqfd needs KVM_CAP_IRQFD_RESAMPLE, which this host's KVM lacks");
        }
        if (stopped) {
            throw new IllegalStateException("the VM is closed");
        }
        if (resample != null) {
            vm.registerIrqfd(trigger, resample, gsi);
        } else {
            vm.registerIrqfd(trigger, gsi);
        }
        AtomicBoolean closed = new AtomicBoolean();
        return () -> {
            if (closed.compareAndSet(false, true)) {
                vm.unregisterIrqfd(trigger, gsi);
            }
        };
    }

    @Override
    void endOfInterruptExit(int vector) {
        // KVM's IOAPIC handles EOIs itself: this exit does not happen with its irqchip
    }

    @Override
    void stop() {
        List<Resampler> all;
        synchronized (this) {
            stopped = true;
            all = new ArrayList<>(resamplers.values());
        }
        all.forEach(Resampler::stop);
    }

    @Override
    void release() {
        super.release();
        List<AutoCloseable> fds = new ArrayList<>();
        synchronized (this) {
            lines.values().forEach(l -> fds.add(l.irqfd));
            lines.clear();
            resamplers.values().forEach(r -> {
                if (r.waiter.isAlive()) {
                    // its thread still reads the eventfd: leave both open rather than let it read a reused number
                    LOG.log(Level.ERROR, r.waiter.getName() + " is still running; its eventfds stay open");
                } else {
                    fds.add(r.trigger);
                    fds.add(r.resample);
                }
            });
            resamplers.clear();
        }
        for (AutoCloseable c : fds) {
            try {
                c.close();
            } catch (Exception e) {
                LOG.log(Level.WARNING, "closing an interrupt eventfd failed", e);
            }
        }
    }

    private final class Line implements IrqLine {
        private final int gsi;
        private final EventFd irqfd;
        /** The level last set through KVM_IRQ_LINE, so a resampler taking over can assert it. */
        private volatile boolean high;

        Line(int gsi) {
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
            Resampler r = resamplers.get(gsi);
            if (r == null) {
                high = level;
                vm.irqLine(gsi, level);
            } else if (level) {
                r.trigger.signal();
            }
        }

        @Override
        public String toString() {
            return "kvm-irqchip gsi " + gsi;
        }
    }

    /** A resampling irqfd on one GSI and the thread that waits for its EOIs. */
    private final class Resampler {
        private final EventFd trigger;
        private final EventFd resample;
        private final List<Runnable> listeners = new CopyOnWriteArrayList<>();
        private final Thread waiter;
        private volatile boolean stopping;
        private boolean failureLogged;

        Resampler(int gsi) {
            trigger = EventFd.create();
            EventFd rs = null;
            try {
                rs = EventFd.create();
                vm.registerIrqfd(trigger, rs, gsi);
            } catch (RuntimeException e) {
                trigger.close();
                if (rs != null) {
                    rs.close();
                }
                throw e;
            }
            resample = rs;
            waiter = new Thread(this::waitForEois, name + "-eoi-gsi" + gsi);
            waiter.setDaemon(true);
            waiter.start();
        }

        private void waitForEois() {
            while (!stopping) {
                resample.read(); // blocks until KVM (or stop()) signals
                if (stopping) {
                    return;
                }
                for (Runnable l : listeners) {
                    try {
                        l.run();
                    } catch (RuntimeException e) {
                        if (!failureLogged) {
                            failureLogged = true;
                            LOG.log(Level.WARNING, "end-of-interrupt listener " + l + " failed (further failures are not logged)", e);
                        }
                    }
                }
            }
        }

        void stop() {
            stopping = true;
            resample.signal();
            try {
                waiter.join(JOIN_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (waiter.isAlive()) {
                LOG.log(Level.WARNING, waiter.getName() + " did not stop within " + JOIN_MILLIS + " ms: a listener is stuck");
            }
        }
    }
}
