package dev.kindling.devices.virtio.blk;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.blk.BlkRequest.Limits;
import dev.kindling.devices.virtio.blk.BlkRequest.Range;
import dev.kindling.devices.virtio.queue.Descriptor;
import dev.kindling.devices.virtio.queue.DescriptorChain;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Buffer;
import dev.kindling.devices.virtio.queue.VirtqueueException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.EdgeCasesMode;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.statistics.Statistics;

/**
 * The request parser on random chains the mock driver writes and the queue pops: a header of any
 * type and sector split at random, data and range buffers of random lengths and directions, direct
 * or indirect. Whatever the driver wrote, parsing throws nothing, and what it accepts is within the
 * chain's buffers, the capacity and the limits.
 */
class BlkRequestFuzzTest {
    private static final long CAPACITY = 4096;
    private static final int[] TYPES = {BlkAbi.T_IN, BlkAbi.T_OUT, BlkAbi.T_FLUSH, BlkAbi.T_GET_ID, BlkAbi.T_DISCARD,
        BlkAbi.T_WRITE_ZEROES, 2, 0x80000000, 0xffffffff};

    /**
     * What a random driver puts in one chain: the header, cut at {@code headerSplit}; range words
     * after it; data buffers in the direction the type wants unless {@code flip}; a status buffer
     * unless told not to.
     */
    record Request(int type, long sector, List<Integer> headerSplit, List<Integer> data, boolean flip,
            boolean statusBuffer, boolean indirect, List<Long> rangeWords) {}

    @Provide
    Arbitrary<Request> requests() {
        Arbitrary<Integer> type = Arbitraries.frequencyOf(
                Tuple.of(8, Arbitraries.of(BlkAbi.T_IN, BlkAbi.T_OUT, BlkAbi.T_FLUSH, BlkAbi.T_GET_ID, BlkAbi.T_DISCARD,
                        BlkAbi.T_WRITE_ZEROES)),
                Tuple.of(1, Arbitraries.of(2, 0x80000000, 0xffffffff)),
                Tuple.of(1, Arbitraries.integers()));
        Arbitrary<Long> sector = Arbitraries.frequencyOf(
                Tuple.of(6, Arbitraries.longs().between(0, CAPACITY + 2)),
                Tuple.of(1, Arbitraries.of(-1L, Long.MAX_VALUE, Long.MIN_VALUE, CAPACITY - 1, 1L << 55)),
                Tuple.of(1, Arbitraries.longs()));
        // mostly whole sectors, sometimes odd lengths
        Arbitrary<Integer> length = Arbitraries.frequencyOf(
                Tuple.of(6, Arbitraries.integers().between(1, 8).map(n -> n * 512)),
                Tuple.of(1, Arbitraries.of(0, 1, 20, 511, 513)),
                Tuple.of(1, Arbitraries.integers().between(0, 9000)));
        Arbitrary<List<Integer>> split = Arbitraries.integers().between(1, 20).list().ofMaxSize(4);
        Arbitrary<List<Integer>> data = length.list().ofMaxSize(6);
        Arbitrary<Long> rangeSector = Arbitraries.frequencyOf(
                Tuple.of(6, Arbitraries.longs().between(0, CAPACITY + 16)),
                Tuple.of(1, Arbitraries.of(-1L, 1L << 40)),
                Tuple.of(1, Arbitraries.longs()));
        Arbitrary<Long> countAndFlags = Arbitraries.frequencyOf(
                Tuple.of(4, Arbitraries.longs().between(0, 64)),
                Tuple.of(2, Arbitraries.longs().between(0, 64).map(n -> n | (1L << 32))),
                Tuple.of(1, Arbitraries.longs()));
        Arbitrary<List<Long>> rangeWords = Combinators.combine(rangeSector, countAndFlags)
                .as((a, b) -> List.of(a, b)).list().ofMaxSize(5).map(l -> l.stream().flatMap(List::stream).toList());
        return Combinators.combine(type, sector, split, data, Arbitraries.integers().between(0, 9).map(n -> n == 0),
                Arbitraries.integers().between(0, 9).map(n -> n != 0), Arbitraries.of(true, false), rangeWords).as(Request::new);
    }

    @Property(tries = 1000, edgeCases = EdgeCasesMode.NONE)
    void parsingAcceptsOnlyWhatFitsAndNeverThrows(@ForAll("requests") Request request, @ForAll boolean readOnly,
            @ForAll boolean negotiated) {
        long features = negotiated ? (1L << BlkAbi.F_DISCARD) | (1L << BlkAbi.F_WRITE_ZEROES) : 0;
        Limits limits = Limits.of(BlkConfig.of(CAPACITY, 512), readOnly, features);
        try (VirtqueueDriver driver = VirtqueueDriver.create(64, VirtioFeatures.RING_INDIRECT_DESC)) {
            List<Buffer> buffers = buffers(request);
            if (buffers.isEmpty()) {
                return;
            }
            if (request.indirect()) {
                driver.addIndirect(buffers);
            } else if (buffers.size() <= driver.freeDescriptors()) {
                driver.add(buffers);
            } else {
                return;
            }
            Optional<DescriptorChain> popped;
            try {
                popped = driver.queue().pop(driver.memory());
            } catch (VirtqueueException e) {
                Statistics.collect("queue refused");
                return;
            }
            DescriptorChain chain = popped.orElseThrow();
            BlkRequest parsed = BlkRequest.parse(chain, driver.memory(), limits);
            Statistics.collect(parsed instanceof BlkRequest.Rejected r ? "refused: " + r.reason().replaceAll("[0-9]+", "N")
                    : parsed.getClass().getSimpleName());
            check(chain, parsed, limits);
        }
    }

    private static List<Buffer> buffers(Request r) {
        byte[] header = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putInt(r.type()).putInt(0).putLong(r.sector()).array();
        boolean isRange = r.type() == BlkAbi.T_DISCARD || r.type() == BlkAbi.T_WRITE_ZEROES;
        List<Long> words = isRange || r.flip() ? r.rangeWords() : List.of();
        ByteBuffer ranges = ByteBuffer.allocate(8 * words.size()).order(ByteOrder.LITTLE_ENDIAN);
        words.forEach(ranges::putLong);
        byte[] readable = new byte[16 + ranges.capacity()];
        System.arraycopy(header, 0, readable, 0, 16);
        System.arraycopy(ranges.array(), 0, readable, 16, ranges.capacity());
        List<Buffer> out = new ArrayList<>();
        // the header and any range data, cut where the split says
        int at = 0;
        for (int cut : r.headerSplit()) {
            int end = Math.min(readable.length, at + cut);
            if (end > at) {
                out.add(VirtqueueDriver.readable(Arrays.copyOfRange(readable, at, end)));
                at = end;
            }
        }
        if (at < readable.length) {
            out.add(VirtqueueDriver.readable(Arrays.copyOfRange(readable, at, readable.length)));
        }
        // IN and GET_ID take device-writable data, the others device-readable
        boolean writableData = (r.type() == BlkAbi.T_IN || r.type() == BlkAbi.T_GET_ID) != r.flip();
        boolean noData = isRange || r.type() == BlkAbi.T_FLUSH;
        for (int len : noData && !r.flip() ? List.<Integer>of() : r.data()) {
            out.add(writableData ? VirtqueueDriver.writable(len) : VirtqueueDriver.readable(new byte[len]));
        }
        if (r.statusBuffer()) {
            out.add(VirtqueueDriver.writable(1));
        }
        return out;
    }

    private static boolean inside(Descriptor piece, List<Descriptor> of) {
        for (Descriptor d : of) {
            if (d.writable() == piece.writable() && piece.address() >= d.address()
                    && piece.address() + Buffers.length(piece) <= d.address() + Buffers.length(d)) {
                return true;
            }
        }
        return false;
    }

    private static void check(DescriptorChain chain, BlkRequest parsed, Limits limits) {
        List<Descriptor> all = chain.descriptors();
        long lastWritable = chain.writable().isEmpty() ? -1
                : chain.writable().getLast().address() + Buffers.length(chain.writable().getLast()) - 1;
        assertThat(parsed.head()).isEqualTo(chain.head());
        switch (parsed) {
            case BlkRequest.Rejected r -> {
                assertThat(r.status()).isIn(BlkAbi.S_IOERR, BlkAbi.S_UNSUPP);
                if (chain.writableLength() == 0) {
                    assertThat(r.statusAddress()).isEmpty();
                } else {
                    assertThat(r.statusAddress()).hasValue(lastWritable);
                }
            }
            case BlkRequest.Read r -> {
                assertThat(r.status()).isEqualTo(lastWritable);
                checkData(r.sector(), r.length(), r.data(), all, limits, true);
            }
            case BlkRequest.Write w -> {
                assertThat(limits.readOnly()).isFalse();
                assertThat(w.status()).isEqualTo(lastWritable);
                checkData(w.sector(), w.length(), w.data(), all, limits, false);
            }
            case BlkRequest.Flush f -> assertThat(f.status()).isEqualTo(lastWritable);
            case BlkRequest.GetId g -> {
                assertThat(g.status()).isEqualTo(lastWritable);
                assertThat(g.length()).isPositive().isEqualTo(Buffers.length(g.buffer()));
                assertThat(g.buffer()).allMatch(d -> d.writable() && inside(d, all));
            }
            case BlkRequest.Discard d -> {
                assertThat(limits.readOnly()).isFalse();
                assertThat(limits.discard()).isTrue();
                checkRanges(d.ranges(), limits.config().maxDiscardSeg(), limits.config().maxDiscardSectors(), false);
            }
            case BlkRequest.WriteZeroes z -> {
                assertThat(limits.readOnly()).isFalse();
                assertThat(limits.writeZeroes()).isTrue();
                checkRanges(z.ranges(), limits.config().maxWriteZeroesSeg(), limits.config().maxWriteZeroesSectors(), true);
            }
        }
    }

    private static void checkData(long sector, long length, List<Descriptor> data, List<Descriptor> all, Limits limits,
            boolean writable) {
        assertThat(length % 512).isZero();
        assertThat(Buffers.length(data)).isEqualTo(length);
        assertThat(data.size()).isLessThanOrEqualTo(limits.config().segMax());
        assertThat(data).allMatch(d -> d.writable() == writable && d.length() != 0 && inside(d, all));
        assertThat(Long.compareUnsigned(sector, CAPACITY)).isLessThanOrEqualTo(0);
        assertThat(sector + length / 512).isLessThanOrEqualTo(CAPACITY);
    }

    private static void checkRanges(List<Range> ranges, int maxRanges, int maxSectors, boolean unmapAllowed) {
        assertThat(ranges).isNotEmpty().hasSizeLessThanOrEqualTo(maxRanges);
        for (Range r : ranges) {
            assertThat(Integer.toUnsignedLong(r.sectors())).isLessThanOrEqualTo(maxSectors);
            assertThat(r.sector()).isBetween(0L, CAPACITY);
            assertThat(r.sector() + Integer.toUnsignedLong(r.sectors())).isLessThanOrEqualTo(CAPACITY);
            if (!unmapAllowed) {
                assertThat(r.unmap()).isFalse();
            }
        }
    }
}
