package dev.kindling.devices.virtio.queue;

import java.util.List;

/**
 * One request the driver made available: the head index (what {@link Virtqueue#addUsed} returns to
 * the driver) and its buffers in chain order, indirect tables already followed. Validated: the
 * device-readable buffers come first, then the device-writable ones, each inside guest RAM, and the
 * chain is no longer than the queue allows.
 */
public record DescriptorChain(int head, List<Descriptor> descriptors) {
    public DescriptorChain {
        descriptors = List.copyOf(descriptors);
        boolean seenWritable = false;
        for (Descriptor d : descriptors) {
            if (seenWritable && !d.writable()) {
                throw new IllegalArgumentException("a device-readable buffer follows a device-writable one: " + descriptors);
            }
            seenWritable |= d.writable();
        }
    }

    /** The buffers the device reads, in order. */
    public List<Descriptor> readable() {
        return descriptors.subList(0, firstWritable());
    }

    /** The buffers the device writes, in order. */
    public List<Descriptor> writable() {
        return descriptors.subList(firstWritable(), descriptors.size());
    }

    /** Total bytes of {@link #readable()} (at most 2^32 - 1 per chain times the chain length). */
    public long readableLength() {
        return sum(readable());
    }

    public long writableLength() {
        return sum(writable());
    }

    private int firstWritable() {
        int i = 0;
        while (i < descriptors.size() && !descriptors.get(i).writable()) {
            i++;
        }
        return i;
    }

    private static long sum(List<Descriptor> buffers) {
        long total = 0;
        for (Descriptor d : buffers) {
            total += d.length();
        }
        return total;
    }
}
