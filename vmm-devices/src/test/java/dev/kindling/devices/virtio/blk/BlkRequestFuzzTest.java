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
import dev.kindling.testing.Fuzz;
import dev.kindling.testing.Gen;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * The request parser on random chains the mock driver writes and the queue pops: a header of any
 * type and sector split at random, data and range buffers of random lengths and directions, direct
 * or indirect. Whatever the driver wrote, parsing throws nothing, and what it accepts is within the
 * chain's buffers, the capacity and the limits.
 */
class BlkRequestFuzzTest {
    private static final long CAPACITY = 4096;

    /**
     * What a random driver puts in one chain: the header, cut at {@code headerSplit}; range words
     * after it; data buffers in the direction the type wants unless {@code flip}; a status buffer
     * unless told not to.
     */
    record Request(int type, long sector, List<Integer> headerSplit, List<Integer> data, boolean flip,
            boolean statusBuffer, boolean indirect, List<Long> rangeWords) {}

    private static Request request(Gen g) {
        int type = switch (g.weighted(8, 1, 1)) {
            case 0 -> g.pickInt(BlkAbi.T_IN, BlkAbi.T_OUT, BlkAbi.T_FLUSH, BlkAbi.T_GET_ID, BlkAbi.T_DISCARD,
                    BlkAbi.T_WRITE_ZEROES);
            case 1 -> g.pickInt(2, 0x80000000, 0xffffffff);
            default -> g.anyInt();
        };
        long sector = switch (g.weighted(6, 1, 1)) {
            case 0 -> g.between(0, CAPACITY + 2);
            case 1 -> g.pickLong(-1L, Long.MAX_VALUE, Long.MIN_VALUE, CAPACITY - 1, 1L << 55);
            default -> g.anyLong();
        };
        List<Integer> split = g.list(0, 4, () -> g.between(1, 20));
        List<Integer> data = g.list(0, 6, () -> length(g));
        List<Long> rangeWords = new ArrayList<>();
        for (int i = g.between(0, 5); i > 0; i--) {
            rangeWords.add(rangeSector(g));
            rangeWords.add(countAndFlags(g));
        }
        return new Request(type, sector, split, data, g.oneIn(10), !g.oneIn(10), g.bool(), rangeWords);
    }

    /** Mostly whole sectors, sometimes odd lengths. */
    private static int length(Gen g) {
        return switch (g.weighted(6, 1, 1)) {
            case 0 -> g.between(1, 8) * 512;
            case 1 -> g.pickInt(0, 1, 20, 511, 513);
            default -> g.between(0, 9000);
        };
    }

    private static long rangeSector(Gen g) {
        return switch (g.weighted(6, 1, 1)) {
            case 0 -> g.between(0, CAPACITY + 16);
            case 1 -> g.pickLong(-1L, 1L << 40);
            default -> g.anyLong();
        };
    }

    private static long countAndFlags(Gen g) {
        return switch (g.weighted(4, 2, 1)) {
            case 0 -> g.between(0L, 64);
            case 1 -> g.between(0L, 64) | (1L << 32);
            default -> g.anyLong();
        };
    }

    @Test
    void parsingAcceptsOnlyWhatFitsAndNeverThrows() {
        Map<String, Integer> outcomes = new TreeMap<>();
        Fuzz.check("blk request parsing", g -> {
            Request request = request(g);
            boolean readOnly = g.bool();
            boolean negotiated = g.bool();
            outcomes.merge(parseAndCheck(request, readOnly, negotiated), 1, Integer::sum);
        });
        // the generators reach both sides of the parser
        assertThat(outcomes).containsKeys("Read", "Write").anySatisfy((k, v) -> assertThat(k).startsWith("refused"));
    }

    private static String parseAndCheck(Request request, boolean readOnly, boolean negotiated) {
        long features = negotiated ? (1L << BlkAbi.F_DISCARD) | (1L << BlkAbi.F_WRITE_ZEROES) : 0;
        Limits limits = Limits.of(BlkConfig.of(CAPACITY, 512), readOnly, features);
        try (VirtqueueDriver driver = VirtqueueDriver.create(64, VirtioFeatures.RING_INDIRECT_DESC)) {
            List<Buffer> buffers = buffers(request);
            if (buffers.isEmpty()) {
                return "no buffers";
            }
            if (request.indirect()) {
                driver.addIndirect(buffers);
            } else if (buffers.size() <= driver.freeDescriptors()) {
                driver.add(buffers);
            } else {
                return "too many buffers";
            }
            Optional<DescriptorChain> popped;
            try {
                popped = driver.queue().pop(driver.memory());
            } catch (VirtqueueException e) {
                return "queue refused";
            }
            DescriptorChain chain = popped.orElseThrow();
            BlkRequest parsed = BlkRequest.parse(chain, driver.memory(), limits);
            check(chain, parsed, limits);
            return parsed instanceof BlkRequest.Rejected r ? "refused: " + r.reason().replaceAll("[0-9]+", "N")
                    : parsed.getClass().getSimpleName();
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
