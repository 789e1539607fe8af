package dev.kindling.devices.virtio.queue;

import dev.kindling.memory.GuestMemory;
import java.util.Optional;

/**
 * A split virtqueue (virtio 1.2 section 2.7) as the device sees it: the registers the transport
 * sets (size, the three ring addresses, ready) and the device side (take available chains, return
 * used ones, notification suppression both ways). Knows nothing of the transport or of KVM. Every
 * index, length and address the driver supplies is checked; nothing the driver writes makes it throw
 * anything but {@link VirtqueueException}, touch memory outside guest RAM or loop without bound.
 *
 * <p>Not thread-safe: one device thread serves a queue at a time; the transport configures it only
 * while the device is not active.
 */
public final class Virtqueue {
    /** The largest size the split ring format allows. */
    public static final int MAX_SIZE = 32768;

    public Virtqueue(int maxSize) {
        throw new UnsupportedOperationException("not yet built");
    }

    public int maxSize() {
        throw new UnsupportedOperationException("not yet built");
    }

    /** The size the driver chose (QueueNum); {@link #maxSize()} until it writes one. */
    public int size() {
        throw new UnsupportedOperationException("not yet built");
    }

    public void setSize(int size) {
        throw new UnsupportedOperationException("not yet built");
    }

    public long descriptorTable() {
        throw new UnsupportedOperationException("not yet built");
    }

    public void setDescriptorTable(long gpa) {
        throw new UnsupportedOperationException("not yet built");
    }

    public long availableRing() {
        throw new UnsupportedOperationException("not yet built");
    }

    public void setAvailableRing(long gpa) {
        throw new UnsupportedOperationException("not yet built");
    }

    public long usedRing() {
        throw new UnsupportedOperationException("not yet built");
    }

    public void setUsedRing(long gpa) {
        throw new UnsupportedOperationException("not yet built");
    }

    public boolean ready() {
        throw new UnsupportedOperationException("not yet built");
    }

    public void setReady(boolean ready) {
        throw new UnsupportedOperationException("not yet built");
    }

    /** Negotiated features that change the ring format: RING_EVENT_IDX and RING_INDIRECT_DESC. */
    public void setFeatures(long negotiated) {
        throw new UnsupportedOperationException("not yet built");
    }

    /**
     * Checks what the driver configured before the device uses the queue: a power-of-two size up to
     * {@link #maxSize()}, the rings' alignment (16, 2, 4) and that all three lie in guest RAM. Empty
     * if usable, else why not.
     */
    public Optional<String> validate(GuestMemory memory) {
        throw new UnsupportedOperationException("not yet built");
    }

    /** Back to the state after construction (a device reset): not ready, size {@link #maxSize()}, addresses 0. */
    public void reset() {
        throw new UnsupportedOperationException("not yet built");
    }

    /**
     * Takes the next available chain, or empty if the driver has made none available since the last
     * call.
     *
     * @throws VirtqueueException.InvalidChain a malformed chain, consumed: return its head as used
     * @throws VirtqueueException.BrokenQueue the rings are unusable: the device needs a reset
     */
    public Optional<DescriptorChain> pop(GuestMemory memory) throws VirtqueueException {
        throw new UnsupportedOperationException("not yet built");
    }

    /** Returns chain {@code head} to the driver with {@code length} bytes written into its buffers. */
    public void addUsed(GuestMemory memory, int head, int length) {
        throw new UnsupportedOperationException("not yet built");
    }

    /**
     * After {@link #addUsed} calls: true if the driver wants an interrupt for them (no
     * VIRTQ_AVAIL_F_NO_INTERRUPT, or with RING_EVENT_IDX the used index passed used_event).
     */
    public boolean needsNotification(GuestMemory memory) {
        throw new UnsupportedOperationException("not yet built");
    }

    /**
     * Tells the driver whether the device wants queue notifications (VIRTQ_USED_F_NO_NOTIFY, or
     * avail_event with RING_EVENT_IDX). Enabling returns true if chains became available meanwhile,
     * so a device that goes to sleep after enabling checks again rather than missing them.
     */
    public boolean setNotificationsEnabled(GuestMemory memory, boolean enabled) {
        throw new UnsupportedOperationException("not yet built");
    }
}
