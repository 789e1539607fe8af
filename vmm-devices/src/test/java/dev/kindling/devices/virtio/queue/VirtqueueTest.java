package dev.kindling.devices.virtio.queue;

import static dev.kindling.devices.virtio.queue.VirtqueueDriver.readable;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import dev.kindling.memory.GuestMemory;
import java.nio.charset.StandardCharsets;
import java.util.List;
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
}
