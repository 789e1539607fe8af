package dev.kindling.devices.virtio.queue;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.BiConsumer;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.Tuple;

/**
 * What a hostile driver writes, as jqwik arbitraries, and a device loop that checks what the queue
 * makes of it. Shared by the queue's properties and by device parsers' ones: a device test builds
 * {@link #memory()}, a {@link VirtqueueDriver} {@link #on} it, runs a {@link Script} and serves each
 * chain through its own parser in {@link #serve}'s callback.
 *
 * <p>The memory has holes and an adjacent pair of regions, and the addresses aim at their edges:
 * region A {@code [1 MiB, 1.5 MiB)} (rings and the driver's buffers), region B right after it
 * ({@code [1.5 MiB, 1.5625 MiB)}), a hole, region C {@code [2 MiB, 2 MiB + 64 KiB)}.
 */
// javac's exports lint misfires on jqwik's types seen from the class path
@SuppressWarnings("exports")
public final class ChainFuzzing {
    public static final long A = 0x10_0000;
    public static final long A_SIZE = 0x8_0000;
    public static final long B = A + A_SIZE;
    public static final long B_SIZE = 0x1_0000;
    public static final long C = 0x20_0000;
    public static final long C_SIZE = 0x1_0000;

    private ChainFuzzing() {}

    /** Fresh memory of the layout above (the caller closes it). */
    public static GuestMemory memory() {
        return new GuestMemory(List.of(
                MemoryRegion.anonymous(A, A_SIZE), MemoryRegion.anonymous(B, B_SIZE), MemoryRegion.anonymous(C, C_SIZE)));
    }

    /** A driver whose rings and buffers are in region A. */
    public static VirtqueueDriver on(GuestMemory memory, int size, long features) {
        return VirtqueueDriver.on(memory, A, A_SIZE, size, features);
    }

    /** One raw descriptor: any address, length, flags and next. */
    public record Raw(long address, int length, int flags, int next) {}

    /** One thing the driver does. */
    public sealed interface Step {}

    /** Writes descriptor {@code index} of the ring's table. */
    public record WriteDescriptor(int index, Raw descriptor) implements Step {}

    /**
     * Writes {@code entries} as an indirect table and descriptor {@code index} pointing at it, with
     * length {@code 16 * entries + lengthSkew} and {@code flags} (INDIRECT, maybe more).
     */
    public record WriteIndirect(int index, List<Raw> entries, int lengthSkew, int flags) implements Step {}

    /** A well-formed chain written through the driver (skipped if it has too few free descriptors). */
    public record AddChain(List<VirtqueueDriver.Buffer> buffers, boolean indirect) implements Step {}

    /** Puts {@code head} (any value) in the next available entry and moves avail idx on by one. */
    public record Publish(int head) implements Step {}

    /** Moves avail idx by {@code delta} without writing entries. */
    public record MoveAvailIdx(int delta) implements Step {}

    /** Writes the driver's suppression fields: avail flags and used_event. */
    public record Suppress(int availFlags, int usedEvent) implements Step {}

    /** The device takes up to {@code pops} chains (see {@link #serve}). */
    public record Serve(int pops, boolean notifications) implements Step {}

    /** A driver's run: the queue size and the steps. */
    public record Script(int size, List<Step> steps) {}

    /** Addresses aimed at RAM, the edges of its regions, the holes and the ends of the address space. */
    public static Arbitrary<Long> addresses() {
        Arbitrary<Long> edge = Arbitraries.of(A, B, C, B + B_SIZE, C + C_SIZE, 0L)
                .flatMap(e -> Arbitraries.longs().between(-64, 64).map(d -> e + d));
        return Arbitraries.frequencyOf(
                Tuple.of(6, Arbitraries.longs().between(A, C + C_SIZE)),
                Tuple.of(3, edge),
                Tuple.of(1, Arbitraries.of(-1L, Long.MIN_VALUE, Long.MAX_VALUE, 0xffff_ffff_ffff_f000L, 0xffff_ffffL, 1L << 32)),
                Tuple.of(1, Arbitraries.longs()));
    }

    /** Lengths: empty, small, around page and region sizes, and the largest u32 values. */
    public static Arbitrary<Integer> lengths() {
        return Arbitraries.frequencyOf(
                Tuple.of(6, Arbitraries.integers().between(0, 4096)),
                Tuple.of(2, Arbitraries.of(0, 1, 15, 16, 17, 32, 4095, 4096, 4097, (int) B_SIZE, (int) A_SIZE)),
                Tuple.of(1, Arbitraries.of(-1, -16, Integer.MAX_VALUE, Integer.MIN_VALUE)),
                Tuple.of(1, Arbitraries.integers()));
    }

    /** Flags: mostly the defined bits, sometimes any 16 bits. */
    public static Arbitrary<Integer> flags() {
        return Arbitraries.frequencyOf(
                Tuple.of(8, Arbitraries.integers().between(0, 7)),
                Tuple.of(1, Arbitraries.integers().between(0, 0xffff)));
    }

    /** {@code next}: mostly inside a table of {@code entries}, sometimes anywhere in 16 bits. */
    public static Arbitrary<Integer> nexts(int entries) {
        return Arbitraries.frequencyOf(
                Tuple.of(8, Arbitraries.integers().between(0, entries - 1)),
                Tuple.of(1, Arbitraries.of(entries, 0xffff)),
                Tuple.of(1, Arbitraries.integers().between(0, 0xffff)));
    }

    public static Arbitrary<Raw> raws(int entries) {
        return Combinators.combine(addresses(), lengths(), flags(), nexts(entries)).as(Raw::new);
    }

    /**
     * Buffers of a well-formed chain: readable ones (up to 64 random bytes: jqwik makes each byte
     * shrinkable, which is slow for large arrays) then writable ones (up to 600 bytes).
     */
    public static Arbitrary<List<VirtqueueDriver.Buffer>> buffers(int maxBuffers) {
        Arbitrary<VirtqueueDriver.Buffer> readable = Arbitraries.bytes().array(byte[].class).ofMaxSize(64)
                .map(VirtqueueDriver::readable);
        Arbitrary<VirtqueueDriver.Buffer> writable = Arbitraries.integers().between(0, 600).map(VirtqueueDriver::writable);
        return Combinators.combine(readable.list().ofMaxSize(maxBuffers), writable.list().ofMaxSize(maxBuffers))
                .as((r, w) -> {
                    List<VirtqueueDriver.Buffer> all = new ArrayList<>(r);
                    all.addAll(w);
                    return all.isEmpty() ? List.of(VirtqueueDriver.writable(1)) : all.subList(0, Math.min(all.size(), maxBuffers));
                });
    }

    public static Arbitrary<Step> steps(int size) {
        Arbitrary<Integer> index = Arbitraries.integers().between(0, size - 1);
        Arbitrary<Integer> heads = Arbitraries.frequencyOf(
                Tuple.of(9, index), Tuple.of(1, Arbitraries.integers().between(0, 0xffff)));
        Arbitrary<Step> write = Combinators.combine(index, raws(size)).as(WriteDescriptor::new);
        Arbitrary<Step> indirect = Arbitraries.integers().between(1, 24).flatMap(n -> Combinators.combine(
                index,
                raws(n).list().ofMinSize(1).ofMaxSize(n),
                Arbitraries.frequencyOf(Tuple.of(6, Arbitraries.just(0)), Tuple.of(1, Arbitraries.integers().between(-20, 20))),
                Arbitraries.frequencyOf(Tuple.of(6, Arbitraries.just(Virtqueue.DESC_F_INDIRECT)), Tuple.of(1, flags().map(f -> f | Virtqueue.DESC_F_INDIRECT))))
                .as(WriteIndirect::new));
        Arbitrary<Step> chain = Combinators.combine(buffers(Math.min(size, 8)), Arbitraries.of(true, false)).as(AddChain::new);
        Arbitrary<Step> publish = heads.map(Publish::new);
        Arbitrary<Step> jump = Arbitraries.frequencyOf(
                Tuple.of(4, Arbitraries.integers().between(-2, size + 2)),
                Tuple.of(1, Arbitraries.integers().between(0, 0xffff))).map(MoveAvailIdx::new);
        Arbitrary<Step> suppress = Combinators.combine(Arbitraries.integers().between(0, 3), Arbitraries.integers().between(0, 0xffff))
                .as(Suppress::new);
        Arbitrary<Step> serve = Combinators.combine(Arbitraries.integers().between(1, size + 2), Arbitraries.of(true, false)).as(Serve::new);
        return Arbitraries.frequencyOf(
                Tuple.of(5, write), Tuple.of(3, indirect), Tuple.of(4, chain), Tuple.of(8, publish),
                Tuple.of(1, jump), Tuple.of(1, suppress), Tuple.of(3, serve));
    }

    /** Scripts over queue sizes 1 to 256, 4 to {@code maxSteps} steps, ending with the device serving. */
    public static Arbitrary<Script> scripts(int maxSteps) {
        return Arbitraries.of(1, 2, 4, 8, 16, 256).flatMap(size -> steps(size).list().ofMinSize(4).ofMaxSize(maxSteps)
                .map(steps -> {
                    List<Step> all = new ArrayList<>(steps);
                    all.add(new Serve(size + 2, true));
                    return new Script(size, all);
                }));
    }

    /** What {@link #run} saw, for statistics. */
    public record Outcome(int chains, int invalid, int broken) {}

    /**
     * Plays {@code script} on {@code driver}. At each {@link Serve} the device pops: every chain is
     * checked ({@link #checkChain}), handed to {@code device} (which may write into its writable
     * buffers) and returned used; an InvalidChain's head is returned with length 0; a BrokenQueue
     * ends that Serve. Asserts that nothing but VirtqueueException comes out of the queue and that
     * the queue itself writes nothing outside its used ring.
     */
    public static Outcome run(VirtqueueDriver driver, Script script, BiConsumer<GuestMemory, DescriptorChain> device) {
        int chains = 0, invalid = 0, broken = 0;
        for (Step step : script.steps()) {
            switch (step) {
                case WriteDescriptor w -> {
                    Raw r = w.descriptor();
                    driver.rawDescriptor(w.index(), r.address(), r.length(), r.flags(), r.next());
                }
                case WriteIndirect w -> {
                    long table = driver.allocate(16L * w.entries().size());
                    for (int i = 0; i < w.entries().size(); i++) {
                        Raw r = w.entries().get(i);
                        driver.writeDescriptor(table, i, r.address(), r.length(), r.flags(), r.next());
                    }
                    driver.rawDescriptor(w.index(), table, 16 * w.entries().size() + w.lengthSkew(), w.flags(), 0);
                }
                case AddChain a -> {
                    int needed = a.indirect() ? 1 : a.buffers().size();
                    if (driver.freeDescriptors() >= needed) {
                        if (a.indirect()) {
                            driver.addIndirect(a.buffers());
                        } else {
                            driver.add(a.buffers());
                        }
                    }
                }
                case Publish p -> driver.publishHead(p.head());
                case MoveAvailIdx m -> driver.setAvailIdx(driver.availIdx() + m.delta());
                case Suppress s -> {
                    driver.setAvailFlags(s.availFlags());
                    driver.setUsedEvent(s.usedEvent());
                }
                case Serve s -> {
                    Outcome o = serve(driver, s, device);
                    chains += o.chains();
                    invalid += o.invalid();
                    broken += o.broken();
                }
            }
        }
        return new Outcome(chains, invalid, broken);
    }

    private static Outcome serve(VirtqueueDriver driver, Serve s, BiConsumer<GuestMemory, DescriptorChain> device) {
        GuestMemory mem = driver.memory();
        Virtqueue q = driver.queue();
        MemorySegment[] before = snapshot(mem);
        List<long[]> deviceWrites = new ArrayList<>();
        int chains = 0, invalid = 0, broken = 0;
        for (int i = 0; i < s.pops(); i++) {
            Optional<DescriptorChain> popped;
            try {
                popped = q.pop(mem);
            } catch (VirtqueueException.InvalidChain e) {
                assertThat(e.head()).isBetween(0, q.size() - 1);
                q.addUsed(mem, e.head(), 0);
                invalid++;
                continue;
            } catch (VirtqueueException.BrokenQueue e) {
                broken++;
                break;
            } catch (VirtqueueException e) {
                throw new AssertionError("VirtqueueException is sealed: " + e);
            }
            if (popped.isEmpty()) {
                break;
            }
            DescriptorChain chain = popped.get();
            checkChain(mem, q, chain);
            chain.writable().forEach(d -> deviceWrites.add(new long[] {d.address(), d.length()}));
            device.accept(mem, chain);
            q.addUsed(mem, chain.head(), (int) Math.min(chain.writableLength(), Integer.MAX_VALUE));
            chains++;
            if (s.notifications()) {
                q.needsNotification(mem);
                q.setNotificationsEnabled(mem, (i & 1) == 0);
            }
        }
        deviceWrites.add(new long[] {driver.usedRing(), Virtqueue.usedRingBytes(q.size())});
        assertUnchangedExcept(mem, before, deviceWrites);
        driver.usedAll();
        return new Outcome(chains, invalid, broken);
    }

    /** What every chain the queue returns must satisfy. */
    public static void checkChain(GuestMemory mem, Virtqueue q, DescriptorChain chain) {
        assertThat(chain.head()).isBetween(0, q.size() - 1);
        boolean seenWritable = false;
        for (Descriptor d : chain.descriptors()) {
            assertThat(d.length()).as("%s", d).isPositive();
            assertThat(mem.isValid(d.address(), d.length())).as("%s in one RAM region", d).isTrue();
            assertThat(!d.writable() && seenWritable).as("readable after writable in %s", chain).isFalse();
            seenWritable |= d.writable();
        }
        // a table's worth of direct descriptors plus one indirect table, each split at most at region edges
        assertThat(chain.descriptors().size()).isLessThanOrEqualTo(3 * (q.size() + Virtqueue.MAX_SIZE));
    }

    private static MemorySegment[] snapshot(GuestMemory mem) {
        return mem.regions().stream().map(r -> MemorySegment.ofArray(new byte[(int) r.size()]).copyFrom(r.segment()))
                .toArray(MemorySegment[]::new);
    }

    /** RAM is as in {@code before} outside the given {@code [address, length]} ranges. */
    private static void assertUnchangedExcept(GuestMemory mem, MemorySegment[] before, List<long[]> allowed) {
        List<MemoryRegion> regions = mem.regions();
        for (int r = 0; r < regions.size(); r++) {
            MemoryRegion region = regions.get(r);
            MemorySegment now = region.segment();
            MemorySegment then = before[r];
            long from = 0;
            while (true) {
                long at = then.asSlice(from).mismatch(now.asSlice(from));
                if (at < 0) {
                    break;
                }
                long gpa = region.guestAddress() + from + at;
                long[] range = allowed.stream().filter(a -> gpa >= a[0] && gpa < a[0] + a[1]).findFirst()
                        .orElseThrow(() -> new AssertionError(String.format(
                                "guest memory changed at 0x%x, outside the used ring and the chains' writable buffers", gpa)));
                from = Math.min(range[0] + range[1] - region.guestAddress(), region.size());
            }
        }
    }
}
