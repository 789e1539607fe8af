package dev.kindling.devices.virtio.blk;

import dev.kindling.devices.virtio.queue.Descriptor;
import dev.kindling.memory.GuestMemory;
import java.util.ArrayList;
import java.util.List;

/**
 * The buffers of one direction of a chain seen as one byte stream, so a request may be framed any
 * way the driver likes (virtio 1.x makes no framing promise): a header split over several buffers,
 * data that shares a buffer with the header or the status byte.
 */
final class Buffers {
    private Buffers() {}

    /** Descriptor lengths are u32. */
    static long length(Descriptor d) {
        return Integer.toUnsignedLong(d.length());
    }

    static long length(List<Descriptor> buffers) {
        long total = 0;
        for (Descriptor d : buffers) {
            total += length(d);
        }
        return total;
    }

    /**
     * The pieces of the stream {@code [offset, offset + length)}, as descriptors inside the given
     * ones (so inside guest RAM); empty buffers are left out.
     */
    static List<Descriptor> range(List<Descriptor> buffers, long offset, long length) {
        List<Descriptor> pieces = new ArrayList<>();
        long skip = offset, left = length;
        for (Descriptor d : buffers) {
            if (left == 0) {
                break;
            }
            long n = length(d);
            if (skip >= n) {
                skip -= n;
                continue;
            }
            long take = Math.min(n - skip, left);
            pieces.add(new Descriptor(d.address() + skip, (int) take, d.writable()));
            left -= take;
            skip = 0;
        }
        if (left != 0) {
            throw new IllegalArgumentException("range [" + offset + ", +" + length + ") leaves the buffers");
        }
        return pieces;
    }

    /** Copies {@code dst.length} bytes of the stream from {@code offset}. */
    static void read(GuestMemory memory, List<Descriptor> buffers, long offset, byte[] dst) {
        int done = 0;
        for (Descriptor d : range(buffers, offset, dst.length)) {
            byte[] part = memory.read(d.address(), d.length());
            System.arraycopy(part, 0, dst, done, part.length);
            done += part.length;
        }
    }

    /** Writes {@code src} into the stream from offset 0. */
    static void write(GuestMemory memory, List<Descriptor> buffers, byte[] src) {
        int done = 0;
        for (Descriptor d : range(buffers, 0, src.length)) {
            byte[] part = new byte[d.length()];
            System.arraycopy(src, done, part, 0, part.length);
            memory.write(d.address(), part);
            done += part.length;
        }
    }
}
