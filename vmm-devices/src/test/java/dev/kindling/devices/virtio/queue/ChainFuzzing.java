package dev.kindling.devices.virtio.queue;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.testing.Gen;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.BiConsumer;

/**
 * What a hostile driver writes, as generators over a {@link Gen}, and a device loop that checks
 * what the queue makes of it. Shared by the queue's properties and by device parsers' ones: a device test builds
 * {@link #memory()}, a {@link VirtqueueDriver} {@link #on} it, runs a {@link Script} and serves each
 * chain through its own parser in {@link #serve}'s callback.
 *
 * <p>The memory has holes and an adjacent pair of regions, and the addresses aim at their edges:
 * region A {@code [1 MiB, 1.5 MiB)} (rings and the driver's buffers), region B right after it
 * ({@code [1.5 MiB, 1.5625 MiB)}), a hole, region C {@code [2 MiB, 2 MiB + 64 KiB)}.
 */
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

    /** An address aimed at RAM, the edges of its regions, the holes or the ends of the address space. */
    public static long address(Gen g) {
        return switch (g.weighted(6, 3, 1, 1)) {
            case 0 -> g.between(A, C + C_SIZE);
            case 1 -> g.pickLong(A, B, C, B + B_SIZE, C + C_SIZE, 0L) + g.between(-64, 64);
            case 2 -> g.pickLong(-1L, Long.MIN_VALUE, Long.MAX_VALUE, 0xffff_ffff_ffff_f000L, 0xffff_ffffL, 1L << 32);
            default -> g.anyLong();
        };
    }

    /** A length: empty, small, around page and region sizes, or among the largest u32 values. */
    public static int length(Gen g) {
        return switch (g.weighted(6, 2, 1, 1)) {
            case 0 -> g.between(0, 4096);
            case 1 -> g.pickInt(0, 1, 15, 16, 17, 32, 4095, 4096, 4097, (int) B_SIZE, (int) A_SIZE);
            case 2 -> g.pickInt(-1, -16, Integer.MAX_VALUE, Integer.MIN_VALUE);
            default -> g.anyInt();
        };
    }

    /** Flags: mostly the defined bits, sometimes any 16 bits. */
    public static int flags(Gen g) {
        return g.weighted(8, 1) == 0 ? g.between(0, 7) : g.between(0, 0xffff);
    }

    /** {@code next}: mostly inside a table of {@code entries}, sometimes anywhere in 16 bits. */
    public static int next(Gen g, int entries) {
        return switch (g.weighted(8, 1, 1)) {
            case 0 -> g.between(0, entries - 1);
            case 1 -> g.pickInt(entries, 0xffff);
            default -> g.between(0, 0xffff);
        };
    }

    public static Raw raw(Gen g, int entries) {
        return new Raw(address(g), length(g), flags(g), next(g, entries));
    }

    /**
     * Buffers of a well-formed chain: readable ones (up to 64 random bytes) then writable ones (up
     * to 600 bytes), at most {@code maxBuffers} and at least one.
     */
    public static List<VirtqueueDriver.Buffer> buffers(Gen g, int maxBuffers) {
        List<VirtqueueDriver.Buffer> all = new ArrayList<>(
                g.list(0, maxBuffers, () -> VirtqueueDriver.readable(g.bytes(0, 64))));
        all.addAll(g.list(0, maxBuffers, () -> VirtqueueDriver.writable(g.between(0, 600))));
        return all.isEmpty() ? List.of(VirtqueueDriver.writable(1)) : all.subList(0, Math.min(all.size(), maxBuffers));
    }

    public static Step step(Gen g, int size) {
        return switch (g.weighted(5, 3, 4, 8, 1, 1, 3)) {
            case 0 -> new WriteDescriptor(g.between(0, size - 1), raw(g, size));
            case 1 -> {
                int n = g.between(1, 24);
                yield new WriteIndirect(g.between(0, size - 1), g.list(1, n, () -> raw(g, n)),
                        g.weighted(6, 1) == 0 ? 0 : g.between(-20, 20),
                        g.weighted(6, 1) == 0 ? Virtqueue.DESC_F_INDIRECT : flags(g) | Virtqueue.DESC_F_INDIRECT);
            }
            case 2 -> new AddChain(buffers(g, Math.min(size, 8)), g.bool());
            case 3 -> new Publish(g.weighted(9, 1) == 0 ? g.between(0, size - 1) : g.between(0, 0xffff));
            case 4 -> new MoveAvailIdx(g.weighted(4, 1) == 0 ? g.between(-2, size + 2) : g.between(0, 0xffff));
            case 5 -> new Suppress(g.between(0, 3), g.between(0, 0xffff));
            default -> new Serve(g.between(1, size + 2), g.bool());
        };
    }

    /** A script over a queue size from 1 to 256, 4 to {@code maxSteps} steps, ending with the device serving. */
    public static Script script(Gen g, int maxSteps) {
        int size = g.pickInt(1, 2, 4, 8, 16, 256);
        List<Step> all = new ArrayList<>(g.list(4, maxSteps, () -> step(g, size)));
        all.add(new Serve(size + 2, true));
        return new Script(size, all);
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
