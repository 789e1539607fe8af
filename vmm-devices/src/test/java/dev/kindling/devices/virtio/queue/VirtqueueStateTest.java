package dev.kindling.devices.virtio.queue;

import static dev.kindling.devices.virtio.queue.VirtqueueDriver.readable;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import java.util.List;
import org.junit.jupiter.api.Test;

/** A queue's saved positions, and giving back a popped chain. */
class VirtqueueStateTest {
    private static final long FEATURES = VirtioFeatures.RING_EVENT_IDX;

    private static byte[] save(Virtqueue q) {
        StateWriter w = new StateWriter();
        q.saveState(w);
        return w.toByteArray();
    }

    @Test
    void aRestoredQueueTakesTheNextChainAndUsesTheNextEntry() throws Exception {
        try (VirtqueueDriver d = VirtqueueDriver.create(8, FEATURES)) {
            Virtqueue q = d.queue();
            for (int i = 0; i < 11; i++) { // past the ring's wrap
                d.add(List.of(writable(4)));
                DescriptorChain c = q.pop(d.memory()).orElseThrow();
                q.addUsed(d.memory(), c.head(), 4);
                assertThat(d.used()).isPresent();
            }
            q.needsNotification(d.memory());
            byte[] state = save(q);

            Virtqueue r = new Virtqueue(8);
            r.restoreState(new StateReader(state, "queue"));
            r.setFeatures(FEATURES);
            assertThat(r.nextAvail()).isEqualTo(11);
            assertThat(r.nextUsed()).isEqualTo(11);
            assertThat(r.signalledUsed()).isEqualTo(q.signalledUsed());
            assertThat(r.ready()).isTrue();
            assertThat(r.descriptorTable()).isEqualTo(d.descriptorTable());
            assertThat(save(r)).isEqualTo(state);

            int head = d.add(List.of(readable("x"), writable(4)));
            DescriptorChain c = r.pop(d.memory()).orElseThrow();
            assertThat(c.head()).isEqualTo(head);
            r.addUsed(d.memory(), c.head(), 2);
            assertThat(d.usedIdx()).isEqualTo(12);
            assertThat(d.used().orElseThrow().id()).isEqualTo(head);
        }
    }

    @Test
    void positionsTooFarApartOrABadSizeAreRefused() {
        Virtqueue q = new Virtqueue(16);
        q.setSize(16);
        q.setReady(true);
        byte[] good = save(q);
        // size at 0, ready at 28, nextAvail at 29, nextUsed at 31
        byte[] apart = good.clone();
        apart[29] = 17;
        assertThatThrownBy(() -> new Virtqueue(16).restoreState(new StateReader(apart, "queue")))
                .isInstanceOf(SnapshotException.class).hasMessageContaining("more than the queue size");
        byte[] size = good.clone();
        size[0] = 32;
        assertThatThrownBy(() -> new Virtqueue(16).restoreState(new StateReader(size, "queue")))
                .isInstanceOf(SnapshotException.class).hasMessageContaining("not a power of two in 1..16");
        byte[] notReady = size.clone();
        notReady[28] = 0;
        Virtqueue r = new Virtqueue(16);
        r.restoreState(new StateReader(notReady, "queue")); // what a driver may have written before DRIVER_OK
        assertThat(r.size()).isEqualTo(32);
    }

    @Test
    void undoPopGivesTheLastChainBackAndOnlyIt() throws Exception {
        try (VirtqueueDriver d = VirtqueueDriver.create(8, FEATURES)) {
            Virtqueue q = d.queue();
            int first = d.add(List.of(writable(4)));
            int second = d.add(List.of(writable(8)));
            DescriptorChain a = q.pop(d.memory()).orElseThrow();
            DescriptorChain b = q.pop(d.memory()).orElseThrow();
            assertThat(q.inFlight()).isEqualTo(2);
            assertThatThrownBy(() -> q.undoPop(d.memory(), a)).isInstanceOf(IllegalStateException.class);
            q.undoPop(d.memory(), b);
            assertThat(q.inFlight()).isOne();
            assertThat(q.hasAvailable(d.memory())).isTrue();
            DescriptorChain again = q.pop(d.memory()).orElseThrow();
            assertThat(again).isEqualTo(b);
            assertThat(again.head()).isEqualTo(second);
            q.addUsed(d.memory(), a.head(), 0);
            q.addUsed(d.memory(), again.head(), 0);
            assertThat(q.inFlight()).isZero();
            assertThatThrownBy(() -> q.undoPop(d.memory(), again)).as("nothing in flight").isInstanceOf(IllegalStateException.class);
            assertThat(d.usedAll()).extracting(VirtqueueDriver.Used::id).containsExactly(first, second);
        }
    }
}
