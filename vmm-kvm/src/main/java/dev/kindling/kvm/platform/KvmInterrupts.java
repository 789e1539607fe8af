package dev.kindling.kvm.platform;

import dev.kindling.irq.InterruptService;
import dev.kindling.irq.MsiVector;
import dev.kindling.kvm.Vm;
import dev.kindling.sys.EventFd;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Objects;

/**
 * The interrupt service of a KVM VM, for either irqchip: lines on the IOAPIC pins (GSIs 0-23), and
 * MSI vectors on GSIs above them, all routed through the VM's one {@link GsiRouting}.
 */
abstract sealed class KvmInterrupts implements InterruptService permits KernelIrqchipInterrupts, SplitIrqchipInterrupts {
    /** The GSIs MSI vectors may take: above the IOAPIC pins, below this (KVM allows 4096 routes). */
    static final int GSI_LIMIT = 1024;

    final Vm vm;
    final GsiRouting routing;
    final int pins;
    // guarded by this
    private final BitSet usedGsis = new BitSet();
    private final List<KvmMsiVector> vectors = new ArrayList<>();
    private volatile boolean vmOpen = true;

    KvmInterrupts(Vm vm, GsiRouting routing, int pins) {
        this.vm = Objects.requireNonNull(vm, "vm");
        this.routing = Objects.requireNonNull(routing, "routing");
        this.pins = pins;
    }

    final void checkPin(int gsi, String what) {
        if (gsi < 0 || gsi >= pins) {
            throw new IllegalArgumentException(what + ": GSI " + gsi + " is not an IOAPIC pin (0.." + (pins - 1) + ")");
        }
    }

    @Override
    public final MsiVector msiVector() {
        return newVector(EventFd.nonBlocking(), true);
    }

    /** The vector's irqfd is {@code source}: KVM raises it on each signal while it is unmasked. */
    @Override
    public final MsiVector msiVector(EventFd source) {
        return newVector(Objects.requireNonNull(source, "source"), false);
    }

    private synchronized MsiVector newVector(EventFd irqfd, boolean ownsIrqfd) {
        if (!vmOpen) {
            if (ownsIrqfd) {
                irqfd.close();
            }
            throw new IllegalStateException("the VM is closed");
        }
        int gsi = usedGsis.nextClearBit(pins);
        if (gsi >= GSI_LIMIT) {
            if (ownsIrqfd) {
                irqfd.close();
            }
            throw new IllegalStateException("no GSI left for another MSI vector: all " + (GSI_LIMIT - pins) + " are in use");
        }
        KvmMsiVector v = new KvmMsiVector(this, vm, routing, gsi, irqfd, ownsIrqfd);
        usedGsis.set(gsi);
        vectors.add(v);
        return v;
    }

    final boolean vmOpen() {
        return vmOpen;
    }

    final synchronized void freed(KvmMsiVector v) {
        vectors.remove(v);
        usedGsis.clear(v.gsi());
    }

    /** A local APIC's EOI exit for {@code vector} (split irqchip only). */
    abstract void endOfInterruptExit(int vector);

    /** Stops what runs on its own (threads); the VM is still open. */
    void stop() {}

    /**
     * The VM is closed, which dropped every irqfd and route: closes the eventfds. Called after
     * {@link #stop()}.
     */
    void release() {
        List<KvmMsiVector> open;
        synchronized (this) {
            vmOpen = false;
            open = List.copyOf(vectors);
            vectors.clear();
            usedGsis.clear();
        }
        open.forEach(KvmMsiVector::release);
    }
}
