package dev.kindling.devices.virtio.queue;

import static dev.kindling.devices.virtio.queue.VirtqueueDriver.readable;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import dev.kindling.memory.GuestMemory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.ArrayList;
import org.junit.jupiter.api.Test;

class VirtqueueTest {
    @Test
    void servesADirectChainAndReturnsItUsed() throws Exception {
        try (var driver = VirtqueueDriver.create(16)) {
            GuestMemory mem = driver.memory();
            Virtqueue q = driver.queue();
            assertThat(q.validate(mem)).isEmpty();
            int head = driver.add(List.of(readable("hello"), readable("world!"), writable(8), writable(4)));

            DescriptorChain chain = q.pop(mem).orElseThrow();
            assertThat(chain.head()).isEqualTo(head);
            assertThat(chain.readable()).hasSize(2);
            assertThat(chain.writable()).hasSize(2);
            assertThat(chain.readableLength()).isEqualTo(11);
            assertThat(chain.writableLength()).isEqualTo(12);
            assertThat(new String(mem.read(chain.readable().get(1).address(), 6), StandardCharsets.UTF_8)).isEqualTo("world!");
            assertThat(q.pop(mem)).isEmpty();

            mem.write(chain.writable().get(0).address(), "abcdefgh".getBytes(StandardCharsets.UTF_8));
            mem.write(chain.writable().get(1).address(), "ij".getBytes(StandardCharsets.UTF_8));
            q.addUsed(mem, head, 10);
            assertThat(q.needsNotification(mem)).isTrue();

            Used used = driver.used().orElseThrow();
            assertThat(used.id()).isEqualTo(head);
            assertThat(used.length()).isEqualTo(10);
            assertThat(new String(used.written(), StandardCharsets.UTF_8)).isEqualTo("abcdefghij");
            assertThat(driver.used()).isEmpty();
            assertThat(driver.freeDescriptors()).isEqualTo(16);
        }
    }

    @Test
    void followsAnIndirectTable() throws Exception {
        try (var driver = VirtqueueDriver.create(8, VirtioFeatures.RING_INDIRECT_DESC)) {
            int head = driver.addIndirect(List.of(readable("req"), writable(3), writable(1)));
            DescriptorChain chain = driver.queue().pop(driver.memory()).orElseThrow();
            assertThat(chain.head()).isEqualTo(head);
            assertThat(chain.descriptors()).extracting(Descriptor::length).containsExactly(3, 3, 1);
            assertThat(chain.descriptors()).extracting(Descriptor::writable).containsExactly(false, true, true);
        }
    }

    private static final long EVENT_IDX = VirtioFeatures.RING_EVENT_IDX;

    /** Pops one chain and returns it used with length 0. */
    private static void serveOne(VirtqueueDriver driver) throws VirtqueueException {
        Virtqueue q = driver.queue();
        q.addUsed(driver.memory(), q.pop(driver.memory()).orElseThrow().head(), 0);
    }

    /** Moves both rings' indices on by {@code n} (mod 2^16), serving one raw chain over and over. */
    private static void advance(VirtqueueDriver driver, int n) throws VirtqueueException {
        int head = driver.size() - 1;
        driver.rawDescriptor(head, driver.allocate(1), 1, 0, 0);
        for (int i = 0; i < n; i++) {
            driver.publishHead(head);
            serveOne(driver);
            driver.used().orElseThrow();
        }
        driver.queue().needsNotification(driver.memory());
    }

    @Test
    void noInterruptFlagWithoutEventIdx() throws Exception {
        try (var driver = VirtqueueDriver.create(8)) {
            GuestMemory mem = driver.memory();
            Virtqueue q = driver.queue();
            driver.add(List.of(readable("a")));
            serveOne(driver);
            assertThat(q.needsNotification(mem)).isTrue();
            assertThat(q.needsNotification(mem)).as("nothing added since").isFalse();

            driver.setAvailFlags(Virtqueue.AVAIL_F_NO_INTERRUPT);
            driver.add(List.of(readable("b")));
            serveOne(driver);
            assertThat(q.needsNotification(mem)).isFalse();
            driver.setAvailFlags(0);
            driver.add(List.of(readable("c")));
            serveOne(driver);
            assertThat(q.needsNotification(mem)).isTrue();
        }
    }

    @Test
    void usedEventSuppressesInterruptsUntilPassed() throws Exception {
        try (var driver = VirtqueueDriver.create(8, EVENT_IDX)) {
            GuestMemory mem = driver.memory();
            Virtqueue q = driver.queue();
            driver.setAvailFlags(Virtqueue.AVAIL_F_NO_INTERRUPT); // ignored with event-idx
            driver.setUsedEvent(0);
            driver.add(List.of(readable("a")));
            serveOne(driver);
            assertThat(q.needsNotification(mem)).as("used idx 0 -> 1 passes used_event 0").isTrue();

            driver.setUsedEvent(3); // wake me when entry 3 is used, i.e. used idx becomes 4
            for (int i = 0; i < 2; i++) {
                driver.add(List.of(readable("b")));
                serveOne(driver);
                assertThat(q.needsNotification(mem)).as("used idx %d", q.nextUsed()).isFalse();
            }
            driver.add(List.of(readable("c")));
            driver.add(List.of(readable("d")));
            serveOne(driver);
            serveOne(driver);
            assertThat(q.needsNotification(mem)).as("3 -> 5 passes 3 in one batch").isTrue();
            // used_event left behind: no interrupt until the index wraps round to it
            driver.add(List.of(readable("e")));
            serveOne(driver);
            assertThat(q.needsNotification(mem)).isFalse();
        }
    }

    @Test
    void usedEventAcrossTheSixteenBitWrap() throws Exception {
        try (var driver = VirtqueueDriver.create(4, EVENT_IDX)) {
            GuestMemory mem = driver.memory();
            Virtqueue q = driver.queue();
            advance(driver, 65534);
            assertThat(q.nextUsed()).isEqualTo(65534);
            assertThat(driver.usedIdx()).isEqualTo(65534);
            driver.setUsedEvent(0); // the entry with free-running index 65536: used idx becomes 1
            for (int expectedIdx : new int[] {65535, 0}) {
                driver.add(List.of(readable("x")));
                serveOne(driver);
                assertThat(q.nextUsed()).isEqualTo(expectedIdx);
                assertThat(q.needsNotification(mem)).as("used idx %d", expectedIdx).isFalse();
            }
            driver.add(List.of(readable("x")));
            serveOne(driver);
            assertThat(driver.usedIdx()).isEqualTo(1);
            assertThat(q.needsNotification(mem)).isTrue();
            assertThat(driver.usedAll()).hasSize(3);
        }
    }

    @Test
    void needEventMatchesTheSpecFormula() {
        assertThat(Virtqueue.needEvent(0, 1, 0)).isTrue();
        assertThat(Virtqueue.needEvent(1, 1, 0)).isFalse();
        assertThat(Virtqueue.needEvent(5, 10, 3)).isTrue();
        assertThat(Virtqueue.needEvent(10, 10, 3)).isFalse();
        assertThat(Virtqueue.needEvent(2, 10, 3)).isFalse();
        assertThat(Virtqueue.needEvent(0xffff, 1, 0xfffe)).isTrue();
        assertThat(Virtqueue.needEvent(0, 1, 0xfffe)).isTrue();
        assertThat(Virtqueue.needEvent(1, 1, 0xfffe)).isFalse();
        assertThat(Virtqueue.needEvent(0xfffd, 1, 0xfffe)).isFalse();
    }

    @Test
    void noNotifyFlagWithoutEventIdx() throws Exception {
        try (var driver = VirtqueueDriver.create(8)) {
            GuestMemory mem = driver.memory();
            Virtqueue q = driver.queue();
            assertThat(q.setNotificationsEnabled(mem, false)).isFalse();
            assertThat(driver.usedFlags()).isEqualTo(Virtqueue.USED_F_NO_NOTIFY);
            int old = driver.availIdx();
            driver.add(List.of(readable("a")));
            assertThat(driver.wouldNotify(old)).isFalse();
            assertThat(q.setNotificationsEnabled(mem, true)).as("a chain came meanwhile").isTrue();
            assertThat(driver.usedFlags()).isZero();
            serveOne(driver);
            assertThat(q.setNotificationsEnabled(mem, true)).isFalse();
            old = driver.availIdx();
            driver.add(List.of(readable("b")));
            assertThat(driver.wouldNotify(old)).isTrue();
        }
    }

    @Test
    void availEventAsksForTheNextChainAcrossTheWrap() throws Exception {
        try (var driver = VirtqueueDriver.create(4, EVENT_IDX)) {
            GuestMemory mem = driver.memory();
            Virtqueue q = driver.queue();
            advance(driver, 65535);
            assertThat(q.setNotificationsEnabled(mem, true)).isFalse();
            assertThat(driver.availEvent()).isEqualTo(65535);
            assertThat(driver.usedFlags()).as("event-idx does not use the flag").isZero();

            int old = driver.availIdx();
            driver.add(List.of(readable("a")));
            assertThat(driver.availIdx()).isZero();
            assertThat(driver.wouldNotify(old)).isTrue();

            // disabled: avail_event stays where it was, so the next chain does not notify
            assertThat(q.setNotificationsEnabled(mem, false)).isFalse();
            serveOne(driver);
            old = driver.availIdx();
            driver.add(List.of(readable("b")));
            assertThat(driver.wouldNotify(old)).isFalse();
            // enabling sees the chain that came meanwhile and asks for the one after it
            assertThat(q.setNotificationsEnabled(mem, true)).isTrue();
            assertThat(driver.availEvent()).isZero();
            serveOne(driver);
            assertThat(q.setNotificationsEnabled(mem, true)).isFalse();
            assertThat(driver.availEvent()).isEqualTo(1);
            old = driver.availIdx();
            driver.add(List.of(readable("c")));
            assertThat(driver.wouldNotify(old)).isTrue();
        }
    }

    @Test
    void directChainOfTheFullQueueSize() throws Exception {
        int size = 256;
        try (var driver = VirtqueueDriver.create(size)) {
            List<VirtqueueDriver.Buffer> buffers = new ArrayList<>();
            for (int i = 0; i < size; i++) {
                buffers.add(i < size / 2 ? readable(new byte[] {(byte) i}) : writable(1));
            }
            int head = driver.add(buffers);
            DescriptorChain c = driver.queue().pop(driver.memory()).orElseThrow();
            assertThat(c.head()).isEqualTo(head);
            assertThat(c.readable()).hasSize(size / 2);
            assertThat(c.writable()).hasSize(size / 2);
        }
    }

    @Test
    void indirectTableAsLongAsTheQueueButNoLonger() throws Exception {
        int size = 256;
        try (var driver = VirtqueueDriver.create(size, VirtioFeatures.RING_INDIRECT_DESC)) {
            publishIndirect(driver, 1, size);
            DescriptorChain c = driver.queue().pop(driver.memory()).orElseThrow();
            assertThat(c.head()).isEqualTo(1);
            assertThat(c.writable()).hasSize(size);
            publishIndirect(driver, 2, size + 1);
            assertThatThrownBy(() -> driver.queue().pop(driver.memory()))
                    .isInstanceOf(VirtqueueException.InvalidChain.class).hasMessageContaining("queue size");
        }
    }

    /** Writes an indirect table of {@code entries} one-byte writable buffers at head {@code head} and publishes it. */
    private static void publishIndirect(VirtqueueDriver driver, int head, int entries) {
        long data = driver.allocate(entries);
        ByteBuffer table = ByteBuffer.allocate(16 * entries).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < entries; i++) {
            boolean last = i == entries - 1;
            table.putLong(data + i).putInt(1)
                    .putShort((short) (Virtqueue.DESC_F_WRITE | (last ? 0 : Virtqueue.DESC_F_NEXT)))
                    .putShort((short) (last ? 0 : i + 1));
        }
        long tableAt = driver.allocate(table.capacity());
        driver.memory().write(tableAt, table.array());
        driver.rawDescriptor(head, tableAt, table.capacity(), Virtqueue.DESC_F_INDIRECT, 0);
        driver.publishHead(head);
    }

    @Test
    void directDescriptorsThenAnIndirectTable() throws Exception {
        try (var driver = VirtqueueDriver.create(4, VirtioFeatures.RING_INDIRECT_DESC)) {
            long header = driver.allocate(4);
            long table = driver.allocate(32);
            long data = driver.allocate(64);
            driver.writeDescriptor(table, 0, data, 32, Virtqueue.DESC_F_NEXT, 1);
            driver.writeDescriptor(table, 1, data + 32, 32, Virtqueue.DESC_F_WRITE, 0);
            driver.rawDescriptor(3, header, 4, Virtqueue.DESC_F_NEXT, 2);
            // the WRITE flag of the descriptor naming a table is ignored
            driver.rawDescriptor(2, table, 32, Virtqueue.DESC_F_INDIRECT | Virtqueue.DESC_F_WRITE, 0);
            driver.publishHead(3);
            DescriptorChain c = driver.queue().pop(driver.memory()).orElseThrow();
            assertThat(c.descriptors()).containsExactly(
                    new Descriptor(header, 4, false), new Descriptor(data, 32, false), new Descriptor(data + 32, 32, true));
        }
    }

    @Test
    void resetReturnsToTheInitialState() throws Exception {
        try (var driver = VirtqueueDriver.create(8, EVENT_IDX | VirtioFeatures.RING_INDIRECT_DESC)) {
            Virtqueue q = driver.queue();
            advance(driver, 3);
            q.setSize(4);
            q.reset();
            assertThat(q.size()).isEqualTo(8);
            assertThat(q.maxSize()).isEqualTo(8);
            assertThat(q.descriptorTable()).isZero();
            assertThat(q.availableRing()).isZero();
            assertThat(q.usedRing()).isZero();
            assertThat(q.ready()).isFalse();
            assertThat(q.eventIdx()).isFalse();
            assertThat(q.indirectDescriptors()).isFalse();
            assertThat(q.nextAvail()).isZero();
            assertThat(q.nextUsed()).isZero();
            assertThat(q.pop(driver.memory())).isEmpty();
        }
    }

    @Test
    void resetQueueServesAFreshDriver() throws Exception {
        try (var driver = VirtqueueDriver.create(8)) {
            Virtqueue q = driver.queue();
            advance(driver, 5);
            q.reset();
            try (var fresh = driver.sibling(8)) {
                fresh.configure(q);
                int head = fresh.add(List.of(readable("again")));
                assertThat(q.pop(driver.memory()).orElseThrow().head()).isEqualTo(head);
                q.addUsed(driver.memory(), head, 0);
                assertThat(fresh.used().orElseThrow().id()).isEqualTo(head);
            }
        }
    }

    @Test
    void siblingsShareMemoryButNotRings() throws Exception {
        try (var rx = VirtqueueDriver.create(8); var tx = rx.sibling(16)) {
            assertThat(tx.memory()).isSameAs(rx.memory());
            assertThat(tx.descriptorTable()).isNotEqualTo(rx.descriptorTable());
            tx.add(List.of(readable("tx")));
            assertThat(rx.queue().pop(rx.memory())).isEmpty();
            assertThat(tx.queue().pop(tx.memory())).isPresent();
        }
    }
}
