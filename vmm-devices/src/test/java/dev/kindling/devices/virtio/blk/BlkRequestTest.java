package dev.kindling.devices.virtio.blk;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.blk.BlkRequest.Discard;
import dev.kindling.devices.virtio.blk.BlkRequest.Flush;
import dev.kindling.devices.virtio.blk.BlkRequest.GetId;
import dev.kindling.devices.virtio.blk.BlkRequest.Limits;
import dev.kindling.devices.virtio.blk.BlkRequest.Range;
import dev.kindling.devices.virtio.blk.BlkRequest.Read;
import dev.kindling.devices.virtio.blk.BlkRequest.Rejected;
import dev.kindling.devices.virtio.blk.BlkRequest.Write;
import dev.kindling.devices.virtio.blk.BlkRequest.WriteZeroes;
import dev.kindling.devices.virtio.queue.Descriptor;
import dev.kindling.devices.virtio.queue.DescriptorChain;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The request parser on chains built by hand: each framing it must accept, each malformation it must refuse. */
class BlkRequestTest {
    private static final long CAPACITY = 2048;
    private static final long ALL = (1L << BlkAbi.F_DISCARD) | (1L << BlkAbi.F_WRITE_ZEROES);
    private static final Limits RW = Limits.of(BlkConfig.of(CAPACITY, 512), false, ALL);
    private static final Limits RO = Limits.of(BlkConfig.of(CAPACITY, 512), true, ALL);

    private final GuestMemory memory = new GuestMemory(List.of(MemoryRegion.anonymous(0, 1 << 20)));
    private long next = 0x1000;

    @AfterEach
    void close() {
        memory.close();
    }

    /** A readable buffer holding {@code bytes}. */
    private Descriptor out(byte[] bytes) {
        long at = next;
        next += bytes.length + 64;
        memory.write(at, bytes);
        return new Descriptor(at, bytes.length, false);
    }

    private Descriptor in(int length) {
        long at = next;
        next += length + 64;
        return new Descriptor(at, length, true);
    }

    private static byte[] header(int type, long sector) {
        return ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putInt(type).putInt(0).putLong(sector).array();
    }

    private static byte[] ranges(long... sectorCountFlags) {
        ByteBuffer b = ByteBuffer.allocate(sectorCountFlags.length / 3 * 16).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < sectorCountFlags.length; i += 3) {
            b.putLong(sectorCountFlags[i]).putInt((int) sectorCountFlags[i + 1]).putInt((int) sectorCountFlags[i + 2]);
        }
        return b.array();
    }

    private BlkRequest parse(Limits limits, Descriptor... ds) {
        return BlkRequest.parse(new DescriptorChain(7, List.of(ds)), memory, limits);
    }

    private static void assertRejected(BlkRequest r, int status) {
        assertThat(r).isInstanceOf(Rejected.class);
        Rejected rej = (Rejected) r;
        assertThat(rej.head()).isEqualTo(7);
        assertThat(rej.status()).as(rej.reason()).isEqualTo(status);
        assertThat(rej.statusAddress()).isPresent();
    }

    @Test
    void readIntoSeveralSegments() {
        Descriptor a = in(1024), b = in(512), s = in(1);
        BlkRequest r = parse(RW, out(header(BlkAbi.T_IN, 10)), a, b, s);
        assertThat(r).isEqualTo(new Read(7, 10, List.of(a, b), 1536, s.address()));
    }

    @Test
    void headerSplitOverBuffersAndSharingOneWithData() {
        byte[] h = header(BlkAbi.T_OUT, 3);
        byte[] tail = new byte[3 + 512];
        System.arraycopy(h, 13, tail, 0, 3);
        Descriptor first = out(Arrays.copyOfRange(h, 0, 5));
        Descriptor second = out(Arrays.copyOfRange(h, 5, 13));
        Descriptor third = out(tail);
        Descriptor s = in(1);
        BlkRequest r = parse(RW, first, second, third, s);
        assertThat(r).isEqualTo(new Write(7, 3, List.of(new Descriptor(third.address() + 3, 512, false)), 512, s.address()));
    }

    @Test
    void statusIsTheLastWritableByteEvenInsideAData() {
        Descriptor both = in(513);
        BlkRequest r = parse(RW, out(header(BlkAbi.T_IN, 0)), both);
        assertThat(r).isEqualTo(new Read(7, 0, List.of(new Descriptor(both.address(), 512, true)), 512, both.address() + 512));
    }

    @Test
    void emptyBuffersAreIgnored() {
        Descriptor s = in(1);
        BlkRequest r = parse(RW, out(header(BlkAbi.T_FLUSH, 0)), new Descriptor(0x9000, 0, false), s,
                new Descriptor(0xa000, 0, true));
        assertThat(r).isEqualTo(new Flush(7, s.address()));
    }

    @Test
    void noWritableByteMeansNoStatus() {
        BlkRequest r = parse(RW, out(header(BlkAbi.T_IN, 0)), out(new byte[512]));
        assertThat(r).isInstanceOf(Rejected.class);
        assertThat(((Rejected) r).statusAddress()).isEqualTo(OptionalLong.empty());
    }

    @Test
    void shortHeader() {
        assertRejected(parse(RW, out(new byte[15]), in(1)), BlkAbi.S_IOERR);
        assertRejected(parse(RW, in(1)), BlkAbi.S_IOERR);
    }

    @Test
    void dataOfTheWrongDirection() {
        assertRejected(parse(RW, out(header(BlkAbi.T_IN, 0)), out(new byte[512]), in(513)), BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_OUT, 0)), out(new byte[512]), in(513)), BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_FLUSH, 0)), in(513)), BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_GET_ID, 0)), out(new byte[20]), in(21)), BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_DISCARD, 0)), out(ranges(0, 8, 0)), in(2)), BlkAbi.S_IOERR);
    }

    @Test
    void dataNotWholeSectors() {
        assertRejected(parse(RW, out(header(BlkAbi.T_IN, 0)), in(511), in(1)), BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_OUT, 0)), out(new byte[700]), in(1)), BlkAbi.S_IOERR);
    }

    @Test
    void pastTheCapacityWithoutOverflow() {
        assertThat(parse(RW, out(header(BlkAbi.T_IN, CAPACITY - 1)), in(512), in(1))).isInstanceOf(Read.class);
        assertThat(parse(RW, out(header(BlkAbi.T_IN, CAPACITY)), in(1))).isInstanceOf(Read.class);
        assertRejected(parse(RW, out(header(BlkAbi.T_IN, CAPACITY - 1)), in(1024), in(1)), BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_IN, CAPACITY + 1)), in(1)), BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_OUT, -1L)), out(new byte[512]), in(1)), BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_OUT, Long.MAX_VALUE)), out(new byte[512]), in(1)), BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_WRITE_ZEROES, 0)), out(ranges(-8, 16, 0)), in(1)), BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_DISCARD, 0)), out(ranges(CAPACITY - 8, 16, 0)), in(1)), BlkAbi.S_IOERR);
    }

    @Test
    void tooManySegments() {
        List<Descriptor> ds = new ArrayList<>();
        ds.add(out(header(BlkAbi.T_IN, 0)));
        for (int i = 0; i < BlkConfig.SEG_MAX; i++) {
            ds.add(in(512));
        }
        ds.add(in(1));
        assertThat(parse(RW, ds.toArray(Descriptor[]::new))).isInstanceOf(Read.class);
        ds.add(ds.size() - 1, in(512));
        assertRejected(parse(RW, ds.toArray(Descriptor[]::new)), BlkAbi.S_IOERR);
    }

    @Test
    void readOnlyRefusesEveryChange() {
        assertThat(parse(RO, out(header(BlkAbi.T_IN, 0)), in(512), in(1))).isInstanceOf(Read.class);
        assertThat(parse(RO, out(header(BlkAbi.T_FLUSH, 0)), in(1))).isInstanceOf(Flush.class);
        assertRejected(parse(RO, out(header(BlkAbi.T_OUT, 0)), out(new byte[512]), in(1)), BlkAbi.S_IOERR);
        assertRejected(parse(RO, out(header(BlkAbi.T_DISCARD, 0)), out(ranges(0, 8, 0)), in(1)), BlkAbi.S_IOERR);
        assertRejected(parse(RO, out(header(BlkAbi.T_WRITE_ZEROES, 0)), out(ranges(0, 8, 0)), in(1)), BlkAbi.S_IOERR);
    }

    @Test
    void getId() {
        Descriptor id = in(20), s = in(1);
        assertThat(parse(RW, out(header(BlkAbi.T_GET_ID, 0)), id, s)).isEqualTo(new GetId(7, List.of(id), 20, s.address()));
        assertRejected(parse(RW, out(header(BlkAbi.T_GET_ID, 0)), in(1)), BlkAbi.S_IOERR);
    }

    @Test
    void discardAndWriteZeroesRanges() {
        Descriptor s = in(1);
        assertThat(parse(RW, out(header(BlkAbi.T_DISCARD, 0)), out(ranges(0, 8, 0, 100, 1, 0)), s))
                .isEqualTo(new Discard(7, List.of(new Range(0, 8, false), new Range(100, 1, false)), s.address()));
        assertThat(parse(RW, out(header(BlkAbi.T_WRITE_ZEROES, 0)), out(ranges(16, 8, 1)), s))
                .isEqualTo(new WriteZeroes(7, List.of(new Range(16, 8, true)), s.address()));
    }

    @Test
    void badRanges() {
        assertRejected(parse(RW, out(header(BlkAbi.T_DISCARD, 0)), in(1)), BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_DISCARD, 0)), out(new byte[20]), in(1)), BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_DISCARD, 0)), out(new byte[16 * (BlkConfig.MAX_RANGES + 1)]), in(1)),
                BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_DISCARD, 0)), out(ranges(0, BlkConfig.MAX_RANGE_SECTORS + 1L, 0)), in(1)),
                BlkAbi.S_IOERR);
        assertRejected(parse(RW, out(header(BlkAbi.T_DISCARD, 0)), out(ranges(0, 8, 1)), in(1)), BlkAbi.S_UNSUPP);
        assertRejected(parse(RW, out(header(BlkAbi.T_WRITE_ZEROES, 0)), out(ranges(0, 8, 2)), in(1)), BlkAbi.S_UNSUPP);
    }

    @Test
    void unsupported() {
        Limits none = Limits.of(BlkConfig.of(CAPACITY, 512), false, 0);
        assertRejected(parse(none, out(header(BlkAbi.T_DISCARD, 0)), out(ranges(0, 8, 0)), in(1)), BlkAbi.S_UNSUPP);
        assertRejected(parse(none, out(header(BlkAbi.T_WRITE_ZEROES, 0)), out(ranges(0, 8, 0)), in(1)), BlkAbi.S_UNSUPP);
        assertRejected(parse(RW, out(header(2, 0)), in(1)), BlkAbi.S_UNSUPP);
        assertRejected(parse(RW, out(header(0x80000000, 0)), in(1)), BlkAbi.S_UNSUPP);
    }
}
