package dev.kindling.devices.virtio.queue;

import static dev.kindling.devices.virtio.queue.Virtqueue.DESC_F_INDIRECT;
import static dev.kindling.devices.virtio.queue.Virtqueue.DESC_F_NEXT;
import static dev.kindling.devices.virtio.queue.Virtqueue.DESC_F_WRITE;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.readable;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/**
 * Each thing a hostile driver can write: the queue reports it as the class comment of
 * {@link Virtqueue} says, touches nothing outside RAM, and (for a bad chain) serves the next good one.
 */
class HostileChainTest {
    private static final long INDIRECT = VirtioFeatures.RING_INDIRECT_DESC;
    private static final int SIZE = 16;

    /** Writes the hostile chain {@code hostile} publishes at head 15, expects InvalidChain, then serves a good chain. */
    private static void assertInvalidThenCarriesOn(long features, String why, Consumer<VirtqueueDriver> hostile) throws Exception {
        try (var driver = VirtqueueDriver.create(SIZE, features)) {
            GuestMemory mem = driver.memory();
            Virtqueue q = driver.queue();
            hostile.accept(driver);
            assertThatThrownBy(() -> q.pop(mem))
                    .isInstanceOfSatisfying(VirtqueueException.InvalidChain.class, e -> assertThat(e.head()).isEqualTo(15))
                    .hasMessageContaining(why);
            q.addUsed(mem, 15, 0);
            Used failed = driver.used().orElseThrow();
            assertThat(failed.id()).isEqualTo(15);
            assertThat(failed.length()).isZero();

            int good = driver.add(List.of(readable("next"), writable(2)));
            DescriptorChain chain = q.pop(mem).orElseThrow();
            assertThat(chain.head()).isEqualTo(good);
            assertThat(chain.readableLength()).isEqualTo(4);
            assertThat(chain.writableLength()).isEqualTo(2);
            mem.write(chain.writable().getFirst().address(), new byte[] {1, 2});
            q.addUsed(mem, good, 2);
            assertThat(driver.used().orElseThrow().written()).containsExactly(1, 2);
        }
    }

    private static void assertBroken(VirtqueueDriver driver, String why) {
        assertThatThrownBy(() -> driver.queue().pop(driver.memory()))
                .isInstanceOf(VirtqueueException.BrokenQueue.class)
                .hasMessageContaining(why);
    }

    private static void single(VirtqueueDriver d, long address, int length, int flags) {
        d.rawDescriptor(15, address, length, flags, 0);
        d.publishHead(15);
    }

    @Test
    void bufferOutsideRam() throws Exception {
        assertInvalidThenCarriesOn(0, "not in guest RAM", d -> single(d, d.outsideRam(), 512, DESC_F_WRITE));
        assertInvalidThenCarriesOn(0, "not in guest RAM", d -> single(d, 0, 512, 0));
    }

    @Test
    void bufferRunningPastTheEndOfRam() throws Exception {
        assertInvalidThenCarriesOn(0, "not in guest RAM", d -> single(d, d.ramEnd() - 8, 16, DESC_F_WRITE));
        assertInvalidThenCarriesOn(0, "not in guest RAM", d -> single(d, d.ramEnd() - 8, -1, DESC_F_WRITE));
    }

    @Test
    void addressPlusLengthOverflows() throws Exception {
        assertInvalidThenCarriesOn(0, "overflows", d -> single(d, 0xffff_ffff_ffff_f000L, 0x2000, 0));
        assertInvalidThenCarriesOn(0, "overflows", d -> single(d, Long.MIN_VALUE, 1, DESC_F_WRITE));
        assertInvalidThenCarriesOn(0, "not in guest RAM", d -> single(d, Long.MAX_VALUE - 0x10, 0x10, 0));
    }

    @Test
    void bufferAfterAGoodOneOutsideRam() throws Exception {
        assertInvalidThenCarriesOn(0, "descriptor 14", d -> {
            long ok = d.allocate(64);
            d.rawDescriptor(15, ok, 64, DESC_F_NEXT, 14);
            d.rawDescriptor(14, d.outsideRam(), 64, DESC_F_WRITE, 0);
            d.publishHead(15);
        });
    }

    @Test
    void loops() throws Exception {
        assertInvalidThenCarriesOn(0, "longer than its table of 16", d -> {
            d.rawDescriptor(15, d.allocate(8), 8, DESC_F_NEXT, 15);
            d.publishHead(15);
        });
        assertInvalidThenCarriesOn(0, "longer than its table of 16", d -> {
            long buf = d.allocate(8);
            d.rawDescriptor(15, buf, 8, DESC_F_NEXT, 14);
            d.rawDescriptor(14, buf, 8, DESC_F_NEXT | DESC_F_WRITE, 13);
            d.rawDescriptor(13, buf, 8, DESC_F_NEXT | DESC_F_WRITE, 14);
            d.publishHead(15);
        });
    }

    @Test
    void zeroLengthLoopEndsToo() throws Exception {
        assertInvalidThenCarriesOn(0, "longer than its table", d -> {
            d.rawDescriptor(15, 0, 0, DESC_F_NEXT, 15);
            d.publishHead(15);
        });
    }

    @Test
    void nextPastTheTable() throws Exception {
        assertInvalidThenCarriesOn(0, "continues at 16", d -> {
            d.rawDescriptor(15, d.allocate(8), 8, DESC_F_NEXT, SIZE);
            d.publishHead(15);
        });
        assertInvalidThenCarriesOn(0, "continues at 65535", d -> {
            d.rawDescriptor(15, d.allocate(8), 8, DESC_F_NEXT, 0xffff);
            d.publishHead(15);
        });
    }

    @Test
    void readableAfterWritable() throws Exception {
        assertInvalidThenCarriesOn(0, "device-readable descriptor 14 after a device-writable one", d -> {
            long buf = d.allocate(16);
            d.rawDescriptor(15, buf, 8, DESC_F_NEXT | DESC_F_WRITE, 14);
            d.rawDescriptor(14, buf + 8, 8, 0, 0);
            d.publishHead(15);
        });
    }

    @Test
    void indirectWithoutTheFeature() throws Exception {
        assertInvalidThenCarriesOn(0, "RING_INDIRECT_DESC was not negotiated", d -> {
            long table = d.allocate(16);
            d.writeDescriptor(table, 0, d.allocate(8), 8, 0, 0);
            single(d, table, 16, DESC_F_INDIRECT);
        });
    }

    @Test
    void indirectInsideIndirect() throws Exception {
        assertInvalidThenCarriesOn(INDIRECT, "inside an indirect table", d -> {
            long inner = d.allocate(16);
            d.writeDescriptor(inner, 0, d.allocate(8), 8, 0, 0);
            long outer = d.allocate(32);
            d.writeDescriptor(outer, 0, d.allocate(8), 8, DESC_F_NEXT, 1);
            d.writeDescriptor(outer, 1, inner, 16, DESC_F_INDIRECT, 0);
            single(d, outer, 32, DESC_F_INDIRECT);
        });
    }

    @Test
    void indirectWithNext() throws Exception {
        assertInvalidThenCarriesOn(INDIRECT, "both INDIRECT and NEXT", d -> {
            long table = d.allocate(16);
            d.writeDescriptor(table, 0, d.allocate(8), 8, 0, 0);
            d.rawDescriptor(15, table, 16, DESC_F_INDIRECT | DESC_F_NEXT, 14);
            d.rawDescriptor(14, d.allocate(8), 8, DESC_F_WRITE, 0);
            d.publishHead(15);
        });
    }

    @Test
    void indirectTableOfBadLength() throws Exception {
        for (int length : new int[] {0, 8, 17, 24, -16, (Virtqueue.MAX_SIZE + 1) * 16}) {
            assertInvalidThenCarriesOn(INDIRECT, "indirect table of", d -> single(d, d.allocate(32), length, DESC_F_INDIRECT));
        }
    }

    @Test
    void indirectTableOutsideRam() throws Exception {
        assertInvalidThenCarriesOn(INDIRECT, "indirect table", d -> single(d, d.outsideRam(), 16, DESC_F_INDIRECT));
        assertInvalidThenCarriesOn(INDIRECT, "indirect table", d -> single(d, d.ramEnd() - 16, 32, DESC_F_INDIRECT));
    }

    @Test
    void indirectLoopAndNextPastTheIndirectTable() throws Exception {
        assertInvalidThenCarriesOn(INDIRECT, "indirect chain is longer than its table of 2", d -> {
            long table = d.allocate(32);
            long buf = d.allocate(8);
            d.writeDescriptor(table, 0, buf, 8, DESC_F_NEXT, 1);
            d.writeDescriptor(table, 1, buf, 8, DESC_F_NEXT, 0);
            single(d, table, 32, DESC_F_INDIRECT);
        });
        assertInvalidThenCarriesOn(INDIRECT, "continues at 2, past its table of 2", d -> {
            long table = d.allocate(32);
            long buf = d.allocate(8);
            d.writeDescriptor(table, 0, buf, 8, DESC_F_NEXT, 1);
            d.writeDescriptor(table, 1, buf, 8, DESC_F_NEXT, 2);
            single(d, table, 32, DESC_F_INDIRECT);
        });
    }

    @Test
    void indirectBufferOutsideRamAndOrderInsideTheTable() throws Exception {
        assertInvalidThenCarriesOn(INDIRECT, "not in guest RAM", d -> {
            long table = d.allocate(16);
            d.writeDescriptor(table, 0, d.outsideRam(), 4096, DESC_F_WRITE, 0);
            single(d, table, 16, DESC_F_INDIRECT);
        });
        assertInvalidThenCarriesOn(INDIRECT, "device-readable descriptor 1 after a device-writable one", d -> {
            long table = d.allocate(32);
            long buf = d.allocate(8);
            d.writeDescriptor(table, 0, buf, 8, DESC_F_NEXT | DESC_F_WRITE, 1);
            d.writeDescriptor(table, 1, buf, 8, 0, 0);
            single(d, table, 32, DESC_F_INDIRECT);
        });
        // readable direct descriptors may precede a table whose buffers are writable, not the reverse
        assertInvalidThenCarriesOn(INDIRECT, "device-readable descriptor 0 after a device-writable one", d -> {
            long table = d.allocate(16);
            d.writeDescriptor(table, 0, d.allocate(8), 8, 0, 0);
            d.rawDescriptor(15, d.allocate(8), 8, DESC_F_WRITE | DESC_F_NEXT, 14);
            d.rawDescriptor(14, table, 16, DESC_F_INDIRECT, 0);
            d.publishHead(15);
        });
    }

    @Test
    void headPastTheQueueSizeBreaksTheQueue() {
        try (var driver = VirtqueueDriver.create(SIZE)) {
            driver.publishHead(SIZE);
            assertBroken(driver, "names head 16, past the queue size 16");
        }
        try (var driver = VirtqueueDriver.create(SIZE)) {
            driver.publishHead(0xffff);
            assertBroken(driver, "names head 65535");
        }
    }

    @Test
    void availableIndexJumpingPastTheQueueSizeBreaksTheQueue() throws Exception {
        try (var driver = VirtqueueDriver.create(SIZE)) {
            driver.setAvailIdx(SIZE + 1);
            assertBroken(driver, "17 entries past the next one (0), more than the queue size 16");
            // the queue stays broken until reset, whatever is asked again
            assertBroken(driver, "more than the queue size");
        }
        try (var driver = VirtqueueDriver.create(SIZE)) {
            Virtqueue q = driver.queue();
            for (int i = 0; i < 3; i++) {
                driver.add(List.of(readable("x")));
                q.addUsed(driver.memory(), q.pop(driver.memory()).orElseThrow().head(), 0);
                driver.used().orElseThrow();
            }
            driver.setAvailIdx(2); // backwards: 65535 pending
            assertBroken(driver, "65535 entries past the next one (3)");
        }
    }

    @Test
    void exactlyAFullRingIsFine() throws Exception {
        try (var driver = VirtqueueDriver.create(SIZE)) {
            for (int i = 0; i < SIZE; i++) {
                driver.add(List.of(readable(new byte[] {(byte) i})));
            }
            Virtqueue q = driver.queue();
            for (int i = 0; i < SIZE; i++) {
                DescriptorChain c = q.pop(driver.memory()).orElseThrow();
                assertThat(driver.memory().read8(c.descriptors().getFirst().address())).isEqualTo((byte) i);
            }
            assertThat(q.pop(driver.memory())).isEmpty();
        }
    }

    @Test
    void ringsOutsideRamOrMisalignedBreakTheQueue() {
        try (var driver = VirtqueueDriver.create(SIZE)) {
            Virtqueue q = driver.queue();
            GuestMemory mem = driver.memory();
            q.setUsedRing(driver.ramEnd() - 8);
            assertThat(q.validate(mem)).hasValueSatisfying(w -> assertThat(w).contains("used ring").contains("not in guest RAM"));
            assertBroken(driver, "used ring");
            assertThat(q.needsNotification(mem)).isFalse();
            assertThat(q.setNotificationsEnabled(mem, true)).isFalse();
            assertThat(q.hasAvailable(mem)).isFalse();
            assertThatThrownBy(() -> q.addUsed(mem, 0, 0)).isInstanceOf(IllegalStateException.class);

            driver.configure(q);
            q.setAvailableRing(driver.availableRing() + 1);
            assertThat(q.validate(mem)).hasValueSatisfying(w -> assertThat(w).contains("available ring").contains("2-byte aligned"));
            driver.configure(q);
            q.setDescriptorTable(driver.descriptorTable() + 8);
            assertThat(q.validate(mem)).hasValueSatisfying(w -> assertThat(w).contains("descriptor table").contains("16-byte aligned"));
            driver.configure(q);
            q.setUsedRing(driver.usedRing() + 2);
            assertThat(q.validate(mem)).hasValueSatisfying(w -> assertThat(w).contains("4-byte aligned"));
            driver.configure(q);
            q.setDescriptorTable(driver.outsideRam());
            assertBroken(driver, "descriptor table");
            driver.configure(q);
            assertThat(q.validate(mem)).isEmpty();
        }
    }

    @Test
    void badSizesBreakTheQueue() {
        try (var driver = VirtqueueDriver.create(SIZE)) {
            Virtqueue q = driver.queue();
            for (int size : new int[] {0, 3, 12, 32, -1, 65536, Integer.MIN_VALUE}) {
                q.setSize(size);
                assertThat(q.validate(driver.memory())).as("size %d", size).isPresent();
                assertBroken(driver, "queue size " + size);
            }
            q.setSize(8);
            assertThat(q.validate(driver.memory())).isEmpty();
        }
        assertThatThrownBy(() -> new Virtqueue(Virtqueue.MAX_SIZE * 2)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new Virtqueue(0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void zeroLengthBuffersAreEmptyAndNotLookedAt() throws Exception {
        try (var driver = VirtqueueDriver.create(SIZE)) {
            long buf = driver.allocate(8);
            driver.rawDescriptor(15, driver.outsideRam(), 0, DESC_F_NEXT, 14);
            driver.rawDescriptor(14, buf, 8, DESC_F_NEXT, 13);
            driver.rawDescriptor(13, -1L, 0, DESC_F_WRITE, 0);
            driver.publishHead(15);
            DescriptorChain c = driver.queue().pop(driver.memory()).orElseThrow();
            assertThat(c.descriptors()).containsExactly(new Descriptor(buf, 8, false));
        }
    }

    @Test
    void bufferAcrossTwoAdjacentRegionsIsOneDescriptorPerRegion() throws Exception {
        long base = VirtqueueDriver.RAM_BASE;
        long page = 4096;
        try (var mem = new GuestMemory(List.of(MemoryRegion.anonymous(base, 16 * page), MemoryRegion.anonymous(base + 16 * page, 4 * page)));
             var driver = VirtqueueDriver.on(mem, base, 16 * page, SIZE, 0)) {
            long start = base + 16 * page - 100;
            driver.rawDescriptor(15, start, 300, DESC_F_WRITE, 0);
            driver.publishHead(15);
            DescriptorChain c = driver.queue().pop(mem).orElseThrow();
            assertThat(c.descriptors()).containsExactly(new Descriptor(start, 100, true), new Descriptor(base + 16 * page, 200, true));
            assertThat(c.writableLength()).isEqualTo(300);

            // one byte further than the second region: not RAM
            driver.rawDescriptor(14, start, 100 + 4 * (int) page + 1, DESC_F_WRITE, 0);
            driver.publishHead(14);
            assertThatThrownBy(() -> driver.queue().pop(mem)).isInstanceOf(VirtqueueException.InvalidChain.class);
        }
    }

    @Test
    void aQueueThatIsNotReadyServesNothing() throws Exception {
        try (var driver = VirtqueueDriver.create(SIZE)) {
            driver.add(List.of(readable("x")));
            driver.queue().setReady(false);
            assertThat(driver.queue().pop(driver.memory())).isEmpty();
            driver.queue().setReady(true);
            assertThat(driver.queue().pop(driver.memory())).isPresent();
        }
    }
}
