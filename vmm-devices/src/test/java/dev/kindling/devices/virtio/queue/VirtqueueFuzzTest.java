package dev.kindling.devices.virtio.queue;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.queue.ChainFuzzing.Outcome;
import dev.kindling.devices.virtio.queue.ChainFuzzing.Script;
import dev.kindling.memory.GuestMemory;
import java.util.Arrays;
import java.util.List;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.statistics.Statistics;

/**
 * Random hostile drivers against the queue (see {@link ChainFuzzing}): whatever they write, pop
 * throws nothing but VirtqueueException, returns only buffers in RAM, ends, and the queue writes
 * nothing outside its used ring. Tries are bounded so that this runs in seconds.
 */
class VirtqueueProperties {
    private static final long ALL = VirtioFeatures.RING_INDIRECT_DESC | VirtioFeatures.RING_EVENT_IDX;

    @Provide
    Arbitrary<Script> scripts() {
        return ChainFuzzing.scripts(40);
    }

    @Property(tries = 250)
    void hostileDriverWithEveryRingFeature(@ForAll("scripts") Script script) {
        play(script, ALL);
    }

    @Property(tries = 100)
    void hostileDriverWithoutRingFeatures(@ForAll("scripts") Script script) {
        play(script, 0);
    }

    private static void play(Script script, long features) {
        try (GuestMemory mem = ChainFuzzing.memory(); var driver = ChainFuzzing.on(mem, script.size(), features)) {
            Outcome o = ChainFuzzing.run(driver, script, (m, chain) -> {
                // the device writes the ends of each buffer it was given: both must be in RAM
                for (Descriptor d : chain.writable()) {
                    m.write8(d.address(), (byte) 0x5a);
                    m.write8(d.address() + d.length() - 1, (byte) 0x5a);
                }
            });
            Statistics.collect(o.chains() > 0 ? "served" : "-", o.invalid() > 0 ? "invalid" : "-", o.broken() > 0 ? "broken" : "-");
            assertThat(driver.queue().nextUsed()).isBetween(0, 0xffff);
        }
    }

    @Provide
    Arbitrary<List<List<VirtqueueDriver.Buffer>>> wellFormed() {
        return ChainFuzzing.buffers(8).list().ofMinSize(1).ofMaxSize(40);
    }

    /** The other side: a well-formed chain, direct or indirect, is served exactly as written. */
    @Property(tries = 100)
    void wellFormedChainsAreServedAsWritten(@ForAll("wellFormed") List<List<VirtqueueDriver.Buffer>> requests,
                                            @ForAll boolean indirect) throws VirtqueueException {
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
