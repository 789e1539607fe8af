package dev.kindling.devices.virtio.queue;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.queue.ChainFuzzing.Outcome;
import dev.kindling.devices.virtio.queue.ChainFuzzing.Script;
import dev.kindling.memory.GuestMemory;
import dev.kindling.testing.Fuzz;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * Random hostile drivers against the queue (see {@link ChainFuzzing}): whatever they write, pop
 * throws nothing but VirtqueueException, returns only buffers in RAM, ends, and the queue writes
 * nothing outside its used ring. Tries are bounded so that this runs in seconds.
 */
class VirtqueuePropertyTest {
    private static final long ALL = VirtioFeatures.RING_INDIRECT_DESC | VirtioFeatures.RING_EVENT_IDX;

    @Test
    void hostileDriverWithEveryRingFeature() {
        Map<String, Integer> outcomes = new TreeMap<>();
        Fuzz.check("hostile driver, every ring feature", 250, g -> play(ChainFuzzing.script(g, 40), ALL, outcomes));
        assertThat(outcomes).containsKeys("served", "invalid", "broken");
    }

    @Test
    void hostileDriverWithoutRingFeatures() {
        Map<String, Integer> outcomes = new TreeMap<>();
        Fuzz.check("hostile driver, no ring feature", 100, g -> play(ChainFuzzing.script(g, 40), 0, outcomes));
        assertThat(outcomes).containsKeys("served", "invalid", "broken");
    }

    private static void play(Script script, long features, Map<String, Integer> outcomes) {
        try (GuestMemory mem = ChainFuzzing.memory(); var driver = ChainFuzzing.on(mem, script.size(), features)) {
            Outcome o = ChainFuzzing.run(driver, script, (m, chain) -> {
                // the device writes the ends of each buffer it was given: both must be in RAM
                for (Descriptor d : chain.writable()) {
                    m.write8(d.address(), (byte) 0x5a);
                    m.write8(d.address() + d.length() - 1, (byte) 0x5a);
                }
            });
            if (o.chains() > 0) {
                outcomes.merge("served", 1, Integer::sum);
            }
            if (o.invalid() > 0) {
                outcomes.merge("invalid", 1, Integer::sum);
            }
            if (o.broken() > 0) {
                outcomes.merge("broken", 1, Integer::sum);
            }
            assertThat(driver.queue().nextUsed()).isBetween(0, 0xffff);
        }
    }

    /** The other side: a well-formed chain, direct or indirect, is served exactly as written. */
    @Test
    void wellFormedChainsAreServedAsWritten() {
        Fuzz.check("well-formed chains", 100, g -> servedAsWritten(g.list(1, 40, () -> ChainFuzzing.buffers(g, 8)), g.bool()));
    }

    private static void servedAsWritten(List<List<VirtqueueDriver.Buffer>> requests, boolean indirect) throws VirtqueueException {
        try (var driver = VirtqueueDriver.create(8, ALL)) {
            GuestMemory mem = driver.memory();
            Virtqueue q = driver.queue();
            for (List<VirtqueueDriver.Buffer> buffers : requests) {
                int head = indirect ? driver.addIndirect(buffers) : driver.add(buffers);
                DescriptorChain chain = q.pop(mem).orElseThrow();
                assertThat(chain.head()).isEqualTo(head);
                List<VirtqueueDriver.Buffer> nonEmpty = buffers.stream().filter(b -> switch (b) {
                    case VirtqueueDriver.Readable r -> r.data().length > 0;
                    case VirtqueueDriver.Writable w -> w.length() > 0;
                }).toList();
                assertThat(chain.descriptors()).hasSize(nonEmpty.size());
                byte[] written = new byte[(int) chain.writableLength()];
                for (int i = 0; i < nonEmpty.size(); i++) {
                    Descriptor d = chain.descriptors().get(i);
                    switch (nonEmpty.get(i)) {
                        case VirtqueueDriver.Readable r -> {
                            assertThat(d.writable()).isFalse();
                            assertThat(mem.read(d.address(), d.length())).isEqualTo(r.data());
                        }
                        case VirtqueueDriver.Writable w -> {
                            assertThat(d.writable()).isTrue();
                            assertThat(d.length()).isEqualTo(w.length());
                        }
                    }
                }
                int at = 0;
                for (Descriptor d : chain.writable()) {
                    byte[] part = new byte[d.length()];
                    Arrays.fill(part, (byte) (head + at));
                    mem.write(d.address(), part);
                    System.arraycopy(part, 0, written, at, part.length);
                    at += part.length;
                }
                q.addUsed(mem, head, written.length);
                VirtqueueDriver.Used used = driver.used().orElseThrow();
                assertThat(used.id()).isEqualTo(head);
                assertThat(used.written()).isEqualTo(written);
            }
            assertThat(q.pop(mem)).isEmpty();
        }
    }
}
