package dev.kindling.kvm.platform;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.kvm.KvmConstants;
import dev.kindling.kvm.RoutingEntry;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class GsiRoutingTest {
    private final List<List<RoutingEntry>> commits = new ArrayList<>();
    private final GsiRouting.Table recorder = commits::add;

    private List<RoutingEntry> last() {
        return commits.getLast();
    }

    @Test
    void anIoapicReprogramKeepsMsiRoutes() {
        GsiRouting r = new GsiRouting(recorder, List.of());
        RoutingEntry.Msi vector = new RoutingEntry.Msi(24, 0xfee01000L, 0x41);
        r.set(24, vector);
        r.set(4, new RoutingEntry.Msi(4, 0xfee00000L, 0x34));
        r.set(4, new RoutingEntry.Msi(4, 0xfee00000L, 0x35)); // the guest rewrote pin 4
        r.remove(10); // a pin that had no route: nothing to commit
        assertThat(commits).hasSize(3);
        assertThat(last()).containsExactly(new RoutingEntry.Msi(4, 0xfee00000L, 0x35), vector);
        r.remove(4); // masked
        assertThat(last()).containsExactly(vector);
    }

    @Test
    void kvmsDefaultIrqchipRoutesStayInEveryTable() {
        List<RoutingEntry> defaults = GsiRouting.kernelIrqchipDefaults(24);
        assertThat(defaults).hasSize(24 + 16)
                .contains(new RoutingEntry.Irqchip(0, KvmConstants.IRQCHIP_IOAPIC, 0),
                        new RoutingEntry.Irqchip(0, KvmConstants.IRQCHIP_PIC_MASTER, 0),
                        new RoutingEntry.Irqchip(9, KvmConstants.IRQCHIP_PIC_SLAVE, 1),
                        new RoutingEntry.Irqchip(23, KvmConstants.IRQCHIP_IOAPIC, 23));
        GsiRouting r = new GsiRouting(recorder, defaults);
        assertThat(commits).as("KVM has its defaults already").isEmpty();
        r.set(30, new RoutingEntry.Msi(30, 0xfee00000L, 0x50));
        r.set(31, new RoutingEntry.Msi(31, 0xfee00000L, 0x51));
        r.remove(30);
        assertThat(last()).startsWith(defaults.toArray(RoutingEntry[]::new))
                .endsWith(new RoutingEntry.Msi(31, 0xfee00000L, 0x51)).hasSize(defaults.size() + 1);
        assertThatThrownBy(() -> r.set(5, new RoutingEntry.Msi(5, 0xfee00000L, 0x30)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("GSI 5");
        assertThatThrownBy(() -> r.set(32, new RoutingEntry.Msi(33, 0xfee00000L, 0x30)))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void aRefusedTableLeavesThePreviousOne() {
        boolean[] refuse = {false};
        GsiRouting r = new GsiRouting(entries -> {
            if (refuse[0]) {
                throw new IllegalStateException("refused");
            }
            commits.add(entries);
        }, List.of());
        RoutingEntry.Msi old = new RoutingEntry.Msi(24, 0xfee00000L, 0x41);
        r.set(24, old);
        refuse[0] = true;
        assertThatThrownBy(() -> r.set(24, new RoutingEntry.Msi(24, 0xfee00000L, 0x42))).hasMessage("refused");
        assertThatThrownBy(() -> r.set(25, new RoutingEntry.Msi(25, 0xfee00000L, 0x43))).hasMessage("refused");
        assertThat(r.entries()).containsExactly(old);
        refuse[0] = false;
        r.set(26, new RoutingEntry.Msi(26, 0xfee00000L, 0x44));
        assertThat(last()).containsExactly(old, new RoutingEntry.Msi(26, 0xfee00000L, 0x44));
    }

    @Test
    void concurrentChangesEachCommitAWholeTable() throws Exception {
        GsiRouting r = new GsiRouting(entries -> {
            synchronized (commits) {
                commits.add(entries);
            }
        }, List.of());
        Thread[] threads = new Thread[4];
        for (int t = 0; t < threads.length; t++) {
            int base = 24 + 100 * t;
            threads[t] = new Thread(() -> {
                for (int i = 0; i < 50; i++) {
                    r.set(base + i, new RoutingEntry.Msi(base + i, 0xfee00000L, i));
                }
            });
            threads[t].start();
        }
        for (Thread t : threads) {
            t.join(10_000);
        }
        assertThat(r.entries()).hasSize(200);
        synchronized (commits) {
            assertThat(commits).hasSize(200);
            // tables only grow here: each commit holds every route set before it
            for (int i = 0; i < commits.size(); i++) {
                assertThat(commits.get(i)).hasSize(i + 1);
            }
        }
    }
}
