package dev.kindling.devices.virtio.queue;

import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * A split virtqueue (virtio 1.2 section 2.7) as the device sees it: the registers the transport
 * sets (size, the three ring addresses, ready) and the device side (take available chains, return
 * used ones, notification suppression both ways). Knows nothing of the transport or of KVM. Every
 * index, length and address the driver supplies is checked; nothing the driver writes makes it throw
 * anything but {@link VirtqueueException}, touch memory outside guest RAM or loop without bound.
 *
 * <p>What the driver can get wrong, and what follows:
 * <ul>
 * <li>{@link VirtqueueException.BrokenQueue} (the device sets DEVICE_NEEDS_RESET) when the queue
 * cannot be trusted any more or the fault cannot be reported per request: rings not in guest RAM, bad
 * size or alignment (see {@link #validate}), the available index moved by more than the queue size
 * since the last pop, a head index {@code >= size} (it could not be returned in the used ring).
 * <li>{@link VirtqueueException.InvalidChain} (that chain is consumed; the device returns its head,
 * with length 0 or its error status, and serves the next) for everything inside one chain: a buffer
 * outside RAM or whose address + length overflows, a {@code next} past the table, a chain longer than
 * its table (which is also how a loop ends), a device-readable buffer after a device-writable one,
 * INDIRECT without RING_INDIRECT_DESC, INDIRECT inside an indirect table, INDIRECT together with
 * NEXT, and an indirect table that is empty, not a multiple of 16 bytes, longer than the queue
 * size or not in RAM.
 * </ul>
 * A buffer of length 0 is accepted as empty: it adds no {@link Descriptor} and its address is not
 * looked at (it names no memory). A buffer that crosses from one RAM region into an adjacent one
 * becomes one {@link Descriptor} per region, so each descriptor is one slice of host memory (and a
 * buffer over 1 GiB one descriptor per GiB, so that lengths fit an {@code int}).
 * INDIRECT may end a chain of direct descriptors; its own WRITE flag is ignored, as the spec asks.
 *
 * <p>Not thread-safe: one device thread serves a queue at a time; the transport configures it only
 * while the device is not active. A queue that is not ready serves nothing ({@link #pop} is empty);
 * one whose rings {@link #validate} rejects fails {@link #pop} with BrokenQueue; on either the
 * notification calls do nothing.
 *
 * <p><b>Snapshots.</b> {@link #saveState} keeps the registers and the device side's positions (next
 * available and used index, the used index last signalled); the rings themselves are guest memory.
 * {@link #restoreState} takes them back as the driver could have written them, checking only the
 * indices: the transport validates the layout against guest memory as at DRIVER_OK.
 */
public final class Virtqueue implements Stateful {
    /** The largest size the split ring format allows. */
    public static final int MAX_SIZE = 32768;

    /** Descriptor flag: the chain continues at {@code next}. */
    public static final int DESC_F_NEXT = 1;
    /** Descriptor flag: the device writes this buffer. */
    public static final int DESC_F_WRITE = 2;
    /** Descriptor flag: the buffer is a table of descriptors. */
    public static final int DESC_F_INDIRECT = 4;
    /** Available ring flag: the driver wants no interrupt (without RING_EVENT_IDX). */
    public static final int AVAIL_F_NO_INTERRUPT = 1;
    /** Used ring flag: the device wants no notification (without RING_EVENT_IDX). */
    public static final int USED_F_NO_NOTIFY = 1;

    static final int DESCRIPTOR_SIZE = 16;
    private static final int USED_ELEMENT_SIZE = 8;
    private static final long MAX_PIECE = 1L << 30;

    private final int maxSize;
    private int size;
    private long descriptorTable;
    private long availableRing;
    private long usedRing;
    private boolean ready;
    private boolean eventIdx;
    private boolean indirect;
    /** Free-running 16-bit indices (kept in an int, always masked). */
    private int nextAvail;
    private int nextUsed;
    /** The used index when the driver was last told about used buffers. */
    private int signalledUsed;
    /** The memory the layout was last found valid for; null until checked or after a change. */
    private GuestMemory checkedFor;

    public Virtqueue(int maxSize) {
        if (maxSize < 1 || maxSize > MAX_SIZE || Integer.bitCount(maxSize) != 1) {
            throw new IllegalArgumentException("queue size " + maxSize + " is not a power of two in 1.." + MAX_SIZE);
        }
        this.maxSize = maxSize;
        reset();
    }

    public int maxSize() {
        return maxSize;
    }

    /** The size the driver chose (QueueNum); {@link #maxSize()} until it writes one. */
    public int size() {
        return size;
    }

    /** Any value: {@link #validate} rejects one that is not a power of two up to {@link #maxSize()}. */
    public void setSize(int size) {
        this.size = size;
        checkedFor = null;
    }

    public long descriptorTable() {
        return descriptorTable;
    }

    public void setDescriptorTable(long gpa) {
        descriptorTable = gpa;
        checkedFor = null;
    }

    public long availableRing() {
        return availableRing;
    }

    public void setAvailableRing(long gpa) {
        availableRing = gpa;
        checkedFor = null;
    }

    public long usedRing() {
        return usedRing;
    }

    public void setUsedRing(long gpa) {
        usedRing = gpa;
        checkedFor = null;
    }

    public boolean ready() {
        return ready;
    }

    public void setReady(boolean ready) {
        this.ready = ready;
    }

    /** Negotiated features that change the ring format: RING_EVENT_IDX and RING_INDIRECT_DESC. */
    public void setFeatures(long negotiated) {
        eventIdx = (negotiated & VirtioFeatures.RING_EVENT_IDX) != 0;
        indirect = (negotiated & VirtioFeatures.RING_INDIRECT_DESC) != 0;
    }

    /** True if RING_EVENT_IDX was negotiated. */
    public boolean eventIdx() {
        return eventIdx;
    }

    /** True if RING_INDIRECT_DESC was negotiated. */
    public boolean indirectDescriptors() {
        return indirect;
    }

    /** The free-running index of the next available ring entry {@link #pop} reads (mod 2^16). */
    public int nextAvail() {
        return nextAvail;
    }

    /** The free-running index of the next used ring entry {@link #addUsed} writes (mod 2^16). */
    public int nextUsed() {
        return nextUsed;
    }

    /** The used index when the driver was last interrupted (or found not to want it) for used buffers. */
    public int signalledUsed() {
        return signalledUsed;
    }

    /** Chains taken by {@link #pop} and not yet returned by {@link #addUsed} (mod 2^16). */
    public int inFlight() {
        return (nextAvail - nextUsed) & 0xffff;
    }

    /**
     * Checks what the driver configured before the device uses the queue: a power-of-two size up to
     * {@link #maxSize()}, the rings' alignment (16, 2, 4) and that all three lie in guest RAM. Empty
     * if usable, else why not.
     */
    public Optional<String> validate(GuestMemory memory) {
        if (size < 1 || size > maxSize || Integer.bitCount(size) != 1) {
            return Optional.of("queue size " + size + " is not a power of two in 1.." + maxSize);
        }
        Optional<String> why = area("descriptor table", descriptorTable, 16, (long) DESCRIPTOR_SIZE * size, memory);
        if (why.isEmpty()) {
            why = area("available ring", availableRing, 2, availableRingBytes(size), memory);
        }
        if (why.isEmpty()) {
            why = area("used ring", usedRing, 4, usedRingBytes(size), memory);
        }
        return why;
    }

    /** Bytes of the available ring for {@code size} entries: flags, idx, ring, used_event. */
    public static long availableRingBytes(int size) {
        return 6 + 2L * size;
    }

    /** Bytes of the used ring for {@code size} entries: flags, idx, ring, avail_event. */
    public static long usedRingBytes(int size) {
        return 6 + (long) USED_ELEMENT_SIZE * size;
    }

    private static Optional<String> area(String what, long gpa, int alignment, long bytes, GuestMemory memory) {
        if ((gpa & (alignment - 1)) != 0) {
            return Optional.of(what + " at 0x" + Long.toHexString(gpa) + " is not " + alignment + "-byte aligned");
        }
        if (!memory.isValid(gpa, bytes)) {
            return Optional.of(what + " [0x" + Long.toHexString(gpa) + ", +0x" + Long.toHexString(bytes) + ") is not in guest RAM");
        }
        return Optional.empty();
    }

    /** Back to the state after construction (a device reset): not ready, size {@link #maxSize()}, addresses 0. */
    public void reset() {
        size = maxSize;
        descriptorTable = 0;
        availableRing = 0;
        usedRing = 0;
        ready = false;
        eventIdx = false;
        indirect = false;
        nextAvail = 0;
        nextUsed = 0;
        signalledUsed = 0;
        checkedFor = null;
    }

    private boolean usable(GuestMemory memory) {
        if (!ready) {
            return false;
        }
        if (checkedFor != memory) {
            if (validate(memory).isPresent()) {
                return false;
            }
            checkedFor = memory;
        }
        return true;
    }

    /**
     * Takes the next available chain, or empty if the driver has made none available since the last
     * call.
     *
     * @throws VirtqueueException.InvalidChain a malformed chain, consumed: return its head as used
     * @throws VirtqueueException.BrokenQueue the rings are unusable: the device needs a reset
     */
    public Optional<DescriptorChain> pop(GuestMemory memory) throws VirtqueueException {
        if (!ready) {
            return Optional.empty();
        }
        if (checkedFor != memory) {
            Optional<String> why = validate(memory);
            if (why.isPresent()) {
                throw new VirtqueueException.BrokenQueue(why.get());
            }
            checkedFor = memory;
        }
        // Acquire: the ring entries below are read after the index that covers them.
        int availIdx = Short.toUnsignedInt(memory.loadAcquire16(availableRing + 2));
        int pending = (availIdx - nextAvail) & 0xffff;
        if (pending == 0) {
            return Optional.empty();
        }
        if (pending > size) {
            throw new VirtqueueException.BrokenQueue("available index " + availIdx + " is " + pending
                    + " entries past the next one (" + nextAvail + "), more than the queue size " + size);
        }
        int head = Short.toUnsignedInt(memory.read16(availableRing + 4 + 2L * (nextAvail & (size - 1))));
        nextAvail = (nextAvail + 1) & 0xffff;
        if (head >= size) {
            throw new VirtqueueException.BrokenQueue("available ring entry " + ((nextAvail - 1) & 0xffff)
                    + " names head " + head + ", past the queue size " + size);
        }
        return Optional.of(new DescriptorChain(head, walk(memory, head)));
    }

    /**
     * Gives back {@code chain}, which the last {@link #pop} returned, for a device that cannot serve
     * it now (no tokens, no data for an rx buffer): the next pop returns it again, read afresh from
     * the ring, which the driver does not touch while the device owns the chain. So no chain stays
     * taken across a pause, and a snapshot of the quiesced device loses none.
     *
     * @throws IllegalStateException the previous available ring entry does not name {@code chain}
     * (it was not the last chain popped)
     */
    public void undoPop(GuestMemory memory, DescriptorChain chain) {
        if (!usable(memory)) {
            throw new IllegalStateException("undoPop on a queue that is not ready or whose rings are not in RAM");
        }
        int previous = (nextAvail - 1) & 0xffff;
        int head = Short.toUnsignedInt(memory.read16(availableRing + 4 + 2L * (previous & (size - 1))));
        if (inFlight() == 0 || head != chain.head()) {
            throw new IllegalStateException("chain " + chain.head() + " is not the last one popped (entry "
                    + previous + " names " + head + ", " + inFlight() + " in flight)");
        }
        nextAvail = previous;
    }

    /** True if {@link #pop} would find a chain (or a fault); false for a queue that is not usable. */
    public boolean hasAvailable(GuestMemory memory) {
        if (!usable(memory)) {
            return false;
        }
        return Short.toUnsignedInt(memory.loadAcquire16(availableRing + 2)) != nextAvail;
    }

    private List<Descriptor> walk(GuestMemory memory, int head) throws VirtqueueException.InvalidChain {
        List<Descriptor> out = new ArrayList<>();
        long table = descriptorTable;
        int tableEntries = size;
        boolean inIndirect = false;
        boolean seenWritable = false;
        int visited = 0;
        int index = head;
        while (true) {
            if (++visited > tableEntries) {
                throw new VirtqueueException.InvalidChain(head, (inIndirect ? "indirect chain" : "chain")
                        + " is longer than its table of " + tableEntries + " descriptors (a loop?)");
            }
            // The table was checked to lie in RAM, and index < tableEntries.
            long d = table + (long) DESCRIPTOR_SIZE * index;
            long address = memory.read64(d);
            long length = Integer.toUnsignedLong(memory.read32(d + 8));
            int flags = Short.toUnsignedInt(memory.read16(d + 12));
            int next = Short.toUnsignedInt(memory.read16(d + 14));
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!indirect) {
                    throw new VirtqueueException.InvalidChain(head, "INDIRECT descriptor " + index + " but RING_INDIRECT_DESC was not negotiated");
                }
                if (inIndirect) {
                    throw new VirtqueueException.InvalidChain(head, "INDIRECT descriptor " + index + " inside an indirect table");
                }
                if ((flags & DESC_F_NEXT) != 0) {
                    throw new VirtqueueException.InvalidChain(head, "descriptor " + index + " has both INDIRECT and NEXT");
                }
                // A driver must not make a chain longer than the queue (virtio 1.2 2.7.5.3.1), indirect or not.
                if (length == 0 || length % DESCRIPTOR_SIZE != 0 || length / DESCRIPTOR_SIZE > size) {
                    throw new VirtqueueException.InvalidChain(head, "indirect table of " + length
                            + " bytes is not 1.." + size + " descriptors of 16 bytes (the queue size)");
                }
                if (!memory.isValid(address, length)) {
                    throw new VirtqueueException.InvalidChain(head, "indirect table [0x" + Long.toHexString(address)
                            + ", +0x" + Long.toHexString(length) + ") is not in guest RAM");
                }
                table = address;
                tableEntries = (int) (length / DESCRIPTOR_SIZE);
                inIndirect = true;
                visited = 0;
                index = 0;
                continue;
            }
            boolean writable = (flags & DESC_F_WRITE) != 0;
            if (!writable && seenWritable) {
                throw new VirtqueueException.InvalidChain(head, "device-readable descriptor " + index + " after a device-writable one");
            }
            seenWritable |= writable;
            if (length != 0) {
                addBuffer(memory, head, index, address, length, writable, out);
            }
            if ((flags & DESC_F_NEXT) == 0) {
                return out;
            }
            if (next >= tableEntries) {
                throw new VirtqueueException.InvalidChain(head, "descriptor " + index + " continues at " + next
                        + ", past its table of " + tableEntries);
            }
            index = next;
        }
    }

    /** Adds {@code [address, address + length)} as one descriptor per RAM region it covers. */
    private static void addBuffer(GuestMemory memory, int head, int index, long address, long length,
                                  boolean writable, List<Descriptor> out) throws VirtqueueException.InvalidChain {
        if (address < 0 || address + length < address) {
            throw new VirtqueueException.InvalidChain(head, "descriptor " + index + " [0x" + Long.toHexString(address)
                    + ", +0x" + Long.toHexString(length) + ") overflows the address space");
        }
        long at = address;
        long left = length;
        // Each pass takes the rest of a region or a GiB: at most a few passes per descriptor.
        while (left > 0) {
            MemoryRegion region = memory.regionAt(at);
            if (region == null) {
                throw new VirtqueueException.InvalidChain(head, "descriptor " + index + " [0x" + Long.toHexString(address)
                        + ", +0x" + Long.toHexString(length) + ") is not in guest RAM at 0x" + Long.toHexString(at));
            }
            long piece = Math.min(Math.min(left, region.end() - at), MAX_PIECE);
            out.add(new Descriptor(at, (int) piece, writable));
            at += piece;
            left -= piece;
        }
    }

    /**
     * Returns chain {@code head} to the driver with {@code length} bytes written into its buffers,
     * and publishes it (the used index moves with release order, after the entry).
     *
     * @throws IllegalArgumentException {@code head} is not a descriptor index of this queue
     * @throws IllegalStateException the queue is not usable (no chain can have been popped from it)
     */
    public void addUsed(GuestMemory memory, int head, int length) {
        if (!usable(memory)) {
            throw new IllegalStateException("addUsed on a queue that is not ready or whose rings are not in RAM");
        }
        if (head < 0 || head >= size) {
            throw new IllegalArgumentException("head " + head + " is not in 0.." + (size - 1));
        }
        long element = usedRing + 4 + (long) USED_ELEMENT_SIZE * (nextUsed & (size - 1));
        memory.write32(element, head);
        memory.write32(element + 4, length);
        nextUsed = (nextUsed + 1) & 0xffff;
        memory.storeRelease16(usedRing + 2, (short) nextUsed);
    }

    /**
     * After {@link #addUsed} calls: true if the driver wants an interrupt for them (no
     * VIRTQ_AVAIL_F_NO_INTERRUPT, or with RING_EVENT_IDX the used index passed used_event). False if
     * nothing was added since the last call, or the queue is not usable.
     */
    public boolean needsNotification(GuestMemory memory) {
        if (!usable(memory)) {
            return false;
        }
        // The used index published above must be visible before the driver's flags are read, or
        // the driver could go to sleep on a stale index while the device skips the interrupt.
        GuestMemory.fullFence();
        int old = signalledUsed;
        signalledUsed = nextUsed;
        if (old == nextUsed) {
            return false;
        }
        if (eventIdx) {
            int usedEvent = Short.toUnsignedInt(memory.read16(availableRing + 4 + 2L * size));
            return needEvent(usedEvent, nextUsed, old);
        }
        return (Short.toUnsignedInt(memory.read16(availableRing)) & AVAIL_F_NO_INTERRUPT) == 0;
    }

    /** vring_need_event: {@code event} is in {@code [old, now)}, all mod 2^16. */
    static boolean needEvent(int event, int now, int old) {
        return ((now - event - 1) & 0xffff) < ((now - old) & 0xffff);
    }

    /**
     * Tells the driver whether the device wants queue notifications (VIRTQ_USED_F_NO_NOTIFY, or
     * avail_event with RING_EVENT_IDX). Enabling returns true if chains became available meanwhile,
     * so a device that goes to sleep after enabling checks again rather than missing them. Disabling
     * returns false. A queue that is not usable is left alone (false).
     */
    public boolean setNotificationsEnabled(GuestMemory memory, boolean enabled) {
        if (!usable(memory)) {
            return false;
        }
        if (eventIdx) {
            // Disabling with event-idx writes nothing: the driver notifies once more when it passes
            // avail_event, and the device does not move avail_event on until it enables again.
            if (enabled) {
                memory.write16(usedRing + 4 + (long) USED_ELEMENT_SIZE * size, (short) nextAvail);
            }
        } else {
            memory.write16(usedRing, (short) (enabled ? 0 : USED_F_NO_NOTIFY));
        }
        if (!enabled) {
            return false;
        }
        // The store above must be visible before the index is read again, else a chain added in
        // between is missed by both sides.
        GuestMemory.fullFence();
        return Short.toUnsignedInt(memory.loadAcquire16(availableRing + 2)) != nextAvail;
    }

    // ---- snapshots

    @Override
    public void saveState(StateWriter out) {
        out.putInt(size).putLong(descriptorTable).putLong(availableRing).putLong(usedRing).putBoolean(ready)
                .putShort(nextAvail).putShort(nextUsed).putShort(signalledUsed);
    }

    /**
     * Takes back what {@link #saveState} wrote (the features come from the transport's
     * {@link #setFeatures}). The size and addresses are any the driver could have written; the
     * transport {@link #validate}s them before the queue is used.
     */
    @Override
    public void restoreState(StateReader in) {
        int savedSize = in.getInt();
        long desc = in.getLong();
        long avail = in.getLong();
        long used = in.getLong();
        boolean savedReady = in.getBoolean();
        int savedNextAvail = in.getShort();
        int savedNextUsed = in.getShort();
        int savedSignalled = in.getShort();
        if (savedReady && (savedSize < 1 || savedSize > maxSize || Integer.bitCount(savedSize) != 1)) {
            throw in.bad("a ready queue's size " + savedSize + " is not a power of two in 1.." + maxSize);
        }
        if (savedReady && ((savedNextAvail - savedNextUsed) & 0xffff) > savedSize) {
            throw in.bad("next available index " + savedNextAvail + " is more than the queue size " + savedSize
                    + " past the next used index " + savedNextUsed);
        }
        reset();
        size = savedSize;
        descriptorTable = desc;
        availableRing = avail;
        usedRing = used;
        ready = savedReady;
        nextAvail = savedNextAvail;
        nextUsed = savedNextUsed;
        signalledUsed = savedSignalled;
    }
}
