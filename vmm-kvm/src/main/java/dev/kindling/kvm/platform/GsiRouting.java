package dev.kindling.kvm.platform;

import dev.kindling.kvm.KvmConstants;
import dev.kindling.kvm.RoutingEntry;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.TreeMap;

/**
 * The one owner of KVM's GSI routing table. KVM_SET_GSI_ROUTING replaces the whole table, so every
 * route (IOAPIC pins mirrored as MSIs on a split irqchip, MSI vectors, and on KVM's own irqchip its
 * default PIC and IOAPIC routes) lives here and each change commits all of them in one call.
 */
final class GsiRouting {
    /** Where a table goes: KVM_SET_GSI_ROUTING on the VM (a test records it instead). */
    @FunctionalInterface
    interface Table {
        void commit(List<RoutingEntry> entries);
    }

    private final Table table;
    private final List<RoutingEntry> fixed;
    /** One route per GSI, besides the fixed ones; guarded by this. */
    private final TreeMap<Integer, RoutingEntry> routes = new TreeMap<>();

    /**
     * @param fixed routes that stay in every table committed (KVM's defaults on its own irqchip); they
     *     are KVM's already, so nothing is committed until the first {@link #set}
     */
    GsiRouting(Table table, List<RoutingEntry> fixed) {
        this.table = Objects.requireNonNull(table, "table");
        this.fixed = List.copyOf(fixed);
    }

    /**
     * The table KVM installs with KVM_CREATE_IRQCHIP: GSI n to IOAPIC pin n (0-23) and, for n below
     * 16, to pin n % 8 of the master or slave PIC.
     */
    static List<RoutingEntry> kernelIrqchipDefaults(int ioapicPins) {
        List<RoutingEntry> d = new ArrayList<>();
        for (int gsi = 0; gsi < ioapicPins; gsi++) {
            d.add(new RoutingEntry.Irqchip(gsi, KvmConstants.IRQCHIP_IOAPIC, gsi));
            if (gsi < 16) {
                d.add(new RoutingEntry.Irqchip(gsi,
                        gsi < 8 ? KvmConstants.IRQCHIP_PIC_MASTER : KvmConstants.IRQCHIP_PIC_SLAVE, gsi % 8));
            }
        }
        return d;
    }

    /**
     * Routes {@code gsi} to {@code route} (null: no route), replacing its previous one, and commits the
     * table. If KVM refuses it, the previous route stays and the failure is thrown.
     */
    synchronized void set(int gsi, RoutingEntry route) {
        if (route != null && route.gsi() != gsi) {
            throw new IllegalArgumentException("route " + route + " is not for GSI " + gsi);
        }
        for (RoutingEntry f : fixed) {
            if (f.gsi() == gsi) {
                throw new IllegalArgumentException("GSI " + gsi + " is routed to the in-kernel irqchip and cannot be changed");
            }
        }
        RoutingEntry old = route == null ? routes.remove(gsi) : routes.put(gsi, route);
        if (Objects.equals(old, route)) {
            return;
        }
        try {
            table.commit(entries());
        } catch (RuntimeException e) {
            if (old == null) {
                routes.remove(gsi);
            } else {
                routes.put(gsi, old);
            }
            throw e;
        }
    }

    void remove(int gsi) {
        set(gsi, null);
    }

    /** The route of {@code gsi} set here, or null. */
    synchronized RoutingEntry route(int gsi) {
        return routes.get(gsi);
    }

    /** The whole table as committed: the fixed routes, then one per GSI in GSI order. */
    synchronized List<RoutingEntry> entries() {
        List<RoutingEntry> all = new ArrayList<>(fixed.size() + routes.size());
        all.addAll(fixed);
        all.addAll(routes.values());
        return all;
    }
}
