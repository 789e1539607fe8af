package dev.kindling.microvm;

import dev.kindling.devices.legacy.IoApic;
import dev.kindling.devices.legacy.MsiSink;
import dev.kindling.kvm.RoutingEntry;
import dev.kindling.kvm.platform.KvmPlatform;
import java.util.ArrayList;
import java.util.List;

/**
 * Where the VMM's IOAPIC sends interrupts with a split irqchip: KVM_SIGNAL_MSI to the local APICs.
 * Each pin's message is also mirrored into KVM's GSI routing table (GSI = pin), as QEMU does: KVM
 * reports the EOI of a level-triggered vector only for vectors it finds there, and an irqfd on the
 * pin's GSI then takes the same path without leaving the kernel.
 */
final class KvmIoapicSink implements MsiSink {
    private final KvmPlatform platform;
    private final RoutingEntry.Msi[] routes = new RoutingEntry.Msi[IoApic.PINS];

    KvmIoapicSink(KvmPlatform platform) {
        this.platform = platform;
    }

    @Override
    public void deliver(long address, int data) {
        platform.signalMsi(address, data);
    }

    @Override
    public void routeChanged(int pin, long address, int data, boolean masked) {
        synchronized (routes) {
            routes[pin] = masked ? null : new RoutingEntry.Msi(pin, address, data);
            List<RoutingEntry> table = new ArrayList<>();
            for (RoutingEntry.Msi r : routes) {
                if (r != null) {
                    table.add(r);
                }
            }
            platform.vm().setGsiRouting(table);
        }
    }
}
