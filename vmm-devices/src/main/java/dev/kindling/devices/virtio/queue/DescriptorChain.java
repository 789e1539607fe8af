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
    }

    /** The buffers the device reads, in order. */
    public List<Descriptor> readable() {
        throw new UnsupportedOperationException("not yet built");
    }

    /** The buffers the device writes, in order. */
    public List<Descriptor> writable() {
        throw new UnsupportedOperationException("not yet built");
    }

    /** Total bytes of {@link #readable()} (at most 2^32 - 1 per chain times the chain length). */
    public long readableLength() {
        throw new UnsupportedOperationException("not yet built");
    }

    public long writableLength() {
        throw new UnsupportedOperationException("not yet built");
    }
}
