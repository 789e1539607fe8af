package dev.kindling.devices.virtio.queue;

import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.sys.Libc;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The driver side of one split virtqueue, for tests: places the rings in guest memory, configures a
 * {@link Virtqueue} as a transport would, writes descriptor chains (direct or through an indirect
 * table), makes them available and reads back what the device used. It also writes whatever a
 * hostile driver might: raw descriptors, raw heads, an available index anywhere.
 *
 * <pre>{@code
 * try (var driver = VirtqueueDriver.create(16)) {
 *     int head = driver.add(List.of(readable(request), writable(512)));
 *     device.serve(driver.memory(), driver.queue());
 *     Used used = driver.used().orElseThrow();   // used.id() == head, used.written() the bytes
 * }
 * }</pre>
 *
 * Memory: one RAM region of {@link #DEFAULT_RAM} bytes at {@link #RAM_BASE} (or what the test
 * passes to {@link #on}); each ring on its own page at the start, buffers after them from a bump
 * allocator that starts over at the beginning when it reaches the end. {@link #sibling} gives
 * another queue on the same memory (a device with several queues). Not thread-safe.
 */
public final class VirtqueueDriver implements AutoCloseable {
    public static final long RAM_BASE = 0x10_0000;
    public static final long DEFAULT_RAM = 8L << 20;

    /** One buffer of a chain the driver writes. */
    public sealed interface Buffer permits Readable, Writable {}

    /** A buffer the device reads, holding {@code data}. */
    public record Readable(byte[] data) implements Buffer {}

    /** A buffer of {@code length} bytes the device writes (the driver fills it with 0xee first). */
    public record Writable(int length) implements Buffer {}

    /** A used ring entry, with the first {@code length} bytes of the chain's writable buffers. */
    public record Used(int id, int length, byte[] written) {
        @Override
        public String toString() {
            return "Used[id=" + id + ", length=" + length + ", written=" + written.length + " bytes]";
        }
    }

    public static Buffer readable(byte... data) {
        return new Readable(data.clone());
    }

    public static Buffer readable(String text) {
        return new Readable(text.getBytes(StandardCharsets.UTF_8));
    }

    public static Buffer writable(int length) {
        return new Writable(length);
    }

    /** Bump allocator over the buffer area, shared by siblings. */
    private static final class Heap {
        final long start;
        final long end;
        long next;

        Heap(long start, long end) {
            this.start = start;
            this.end = end;
            this.next = start;
        }

        long allocate(long bytes, long alignment) {
            long at = (next + alignment - 1) & -alignment;
            if (at + bytes > end) {
                at = start;
                if (at + bytes > end) {
                    throw new IllegalArgumentException(bytes + " bytes do not fit the driver's buffer area");
                }
            }
            next = at + bytes;
            return at;
        }
    }

    private record Placed(long address, int length) {}

    private final GuestMemory memory;
    private final boolean ownsMemory;
    private final Heap heap;
    private final int size;
    private final long features;
    private final long descriptorTable;
    private final long availableRing;
    private final long usedRing;
    private final Virtqueue queue;
    private final Deque<Integer> free = new ArrayDeque<>();
    /** head -> the direct descriptors it took, and its writable buffers in order. */
    private final Map<Integer, int[]> taken = new HashMap<>();
    private final Map<Integer, List<Placed>> writableOf = new HashMap<>();
    private int availIdx;
    private int usedSeen;

    private VirtqueueDriver(GuestMemory memory, boolean ownsMemory, Heap heap, int size, long features) {
        this.memory = memory;
        this.ownsMemory = ownsMemory;
        this.heap = heap;
        this.size = size;
        this.features = features;
        long page = Libc.pageSize();
        this.descriptorTable = heap.allocate((long) Virtqueue.DESCRIPTOR_SIZE * size, page);
        this.availableRing = heap.allocate(Virtqueue.availableRingBytes(size), page);
        this.usedRing = heap.allocate(Virtqueue.usedRingBytes(size), page);
        for (int i = 0; i < size; i++) {
            free.add(i);
        }
        this.queue = new Virtqueue(size);
        configure(queue);
    }

    /** A queue of {@code size} entries on fresh memory, with no ring features. */
    public static VirtqueueDriver create(int size) {
        return create(size, 0);
    }

    /** A queue of {@code size} entries on fresh memory; {@code features} as negotiated (RING_* bits). */
    public static VirtqueueDriver create(int size, long features) {
        GuestMemory memory = new GuestMemory(List.of(MemoryRegion.anonymous(RAM_BASE, DEFAULT_RAM)));
        try {
            return new VirtqueueDriver(memory, true, new Heap(RAM_BASE, RAM_BASE + DEFAULT_RAM), size, features);
        } catch (RuntimeException e) {
            memory.close();
            throw e;
        }
    }

    /**
     * A queue whose rings and buffers live in {@code [areaBase, areaBase + areaLength)} of memory the
     * test owns (and closes).
     */
    public static VirtqueueDriver on(GuestMemory memory, long areaBase, long areaLength, int size, long features) {
        if (!memory.isValid(areaBase, areaLength)) {
            throw new IllegalArgumentException("area is not in one region of RAM");
        }
        return new VirtqueueDriver(memory, false, new Heap(areaBase, areaBase + areaLength), size, features);
    }

    /** Another queue on the same memory and buffer area (closing it closes nothing). */
    public VirtqueueDriver sibling(int size) {
        return new VirtqueueDriver(memory, false, heap, size, features);
    }

    public GuestMemory memory() {
        return memory;
    }

    /** The device-side queue this driver configured (size, rings, features, ready). */
    public Virtqueue queue() {
        return queue;
    }

    public int size() {
        return size;
    }

    public long descriptorTable() {
        return descriptorTable;
    }

    public long availableRing() {
        return availableRing;
    }

    public long usedRing() {
        return usedRing;
    }

    /** The first address past the RAM region the rings are in. */
    public long ramEnd() {
        return memory.regionAt(descriptorTable).end();
    }

    /** An address that is not RAM (a page past the region's end, if nothing is mapped there). */
    public long outsideRam() {
        long page = Libc.pageSize();
        for (long gpa = ramEnd(); ; gpa += page) {
            if (memory.regionAt(gpa) == null) {
                return gpa;
            }
        }
    }

    /** Sets up {@code q} with this driver's rings and features, and makes it ready, as a transport would. */
    public void configure(Virtqueue q) {
        q.setSize(size);
        q.setDescriptorTable(descriptorTable);
        q.setAvailableRing(availableRing);
        q.setUsedRing(usedRing);
        q.setFeatures(features);
        q.setReady(true);
    }

    /** Bytes from the buffer area, for tests that build raw descriptors or tables. */
    public long allocate(long bytes) {
        return heap.allocate(bytes, 16);
    }

    /** Free direct descriptors. */
    public int freeDescriptors() {
        return free.size();
    }

    /** Writes a chain of direct descriptors and makes it available; returns its head. */
    public int add(List<? extends Buffer> buffers) {
        int head = writeChain(buffers);
        publishHead(head);
        return head;
    }

    /** Writes {@code buffers} into one indirect table behind one direct descriptor, and makes it available. */
    public int addIndirect(List<? extends Buffer> buffers) {
        int head = writeIndirectChain(buffers);
        publishHead(head);
        return head;
    }

    /** Writes a direct chain but does not make it available ({@link #publishHead}). */
    public int writeChain(List<? extends Buffer> buffers) {
        if (buffers.isEmpty() || buffers.size() > free.size()) {
            throw new IllegalArgumentException(buffers.size() + " buffers, " + free.size() + " free descriptors");
        }
        int[] indices = new int[buffers.size()];
        for (int i = 0; i < indices.length; i++) {
            indices[i] = free.poll();
        }
        List<Placed> writable = new ArrayList<>();
        for (int i = 0; i < indices.length; i++) {
            Buffer b = buffers.get(i);
            Placed p = place(b, writable);
            boolean last = i == indices.length - 1;
            int flags = (b instanceof Writable ? Virtqueue.DESC_F_WRITE : 0) | (last ? 0 : Virtqueue.DESC_F_NEXT);
            rawDescriptor(indices[i], p.address(), p.length(), flags, last ? 0 : indices[i + 1]);
        }
        taken.put(indices[0], indices);
        writableOf.put(indices[0], writable);
        return indices[0];
    }

    /** As {@link #addIndirect} without making it available. */
    public int writeIndirectChain(List<? extends Buffer> buffers) {
        if (buffers.isEmpty() || free.isEmpty()) {
            throw new IllegalArgumentException(buffers.size() + " buffers, " + free.size() + " free descriptors");
        }
        long table = allocate((long) Virtqueue.DESCRIPTOR_SIZE * buffers.size());
        List<Placed> writable = new ArrayList<>();
        for (int i = 0; i < buffers.size(); i++) {
            Buffer b = buffers.get(i);
            Placed p = place(b, writable);
            boolean last = i == buffers.size() - 1;
            int flags = (b instanceof Writable ? Virtqueue.DESC_F_WRITE : 0) | (last ? 0 : Virtqueue.DESC_F_NEXT);
            writeDescriptor(table, i, p.address(), p.length(), flags, last ? 0 : i + 1);
        }
        int head = free.poll();
        rawDescriptor(head, table, Virtqueue.DESCRIPTOR_SIZE * buffers.size(), Virtqueue.DESC_F_INDIRECT, 0);
        taken.put(head, new int[] {head});
        writableOf.put(head, writable);
        return head;
    }

    private Placed place(Buffer b, List<Placed> writable) {
        return switch (b) {
            case Readable r -> {
                long at = allocate(Math.max(1, r.data().length));
                memory.write(at, r.data());
                yield new Placed(at, r.data().length);
            }
            case Writable w -> {
                long at = allocate(Math.max(1, w.length()));
                byte[] fill = new byte[w.length()];
                Arrays.fill(fill, (byte) 0xee);
                memory.write(at, fill);
                Placed p = new Placed(at, w.length());
                writable.add(p);
                yield p;
            }
        };
    }

    /**
     * Writes descriptor {@code index} of the ring's table as given, checking nothing (the index must
     * be inside the table). Takes {@code index} out of the driver's free list.
     */
    public void rawDescriptor(int index, long address, int length, int flags, int next) {
        if (index < 0 || index >= size) {
            throw new IllegalArgumentException("descriptor " + index + " is not in the table");
        }
        free.remove(index);
        writeDescriptor(descriptorTable, index, address, length, flags, next);
    }

    /** Writes entry {@code index} of a descriptor table at {@code table} (a ring's or an indirect one). */
    public void writeDescriptor(long table, int index, long address, int length, int flags, int next) {
        long d = table + (long) Virtqueue.DESCRIPTOR_SIZE * index;
        memory.write64(d, address);
        memory.write32(d + 8, length);
        memory.write16(d + 12, (short) flags);
        memory.write16(d + 14, (short) next);
    }

    /** Puts {@code head} (any value) in the next available ring entry and moves the index past it. */
    public void publishHead(int head) {
        memory.write16(availableRing + 4 + 2L * (availIdx & (size - 1)), (short) head);
        setAvailIdx(availIdx + 1);
    }

    /** Writes the available index (any value; release order, as a driver does). */
    public void setAvailIdx(int idx) {
        availIdx = idx & 0xffff;
        memory.storeRelease16(availableRing + 2, (short) availIdx);
    }

    public int availIdx() {
        return availIdx;
    }

    public void setAvailFlags(int flags) {
        memory.write16(availableRing, (short) flags);
    }

    /** used_event, the last field of the available ring (RING_EVENT_IDX). */
    public void setUsedEvent(int idx) {
        memory.write16(availableRing + 4 + 2L * size, (short) idx);
    }

    public int usedFlags() {
        return Short.toUnsignedInt(memory.read16(usedRing));
    }

    public int usedIdx() {
        return Short.toUnsignedInt(memory.loadAcquire16(usedRing + 2));
    }

    /** avail_event, the last field of the used ring (RING_EVENT_IDX). */
    public int availEvent() {
        return Short.toUnsignedInt(memory.read16(usedRing + 4 + 8L * size));
    }

    /**
     * Whether the driver would notify the device now for the chains published since its available
     * index was {@code oldAvailIdx}: VIRTQ_USED_F_NO_NOTIFY, or with RING_EVENT_IDX avail_event.
     */
    public boolean wouldNotify(int oldAvailIdx) {
        if (queue.eventIdx()) {
            return Virtqueue.needEvent(availEvent(), availIdx, oldAvailIdx & 0xffff);
        }
        return (usedFlags() & Virtqueue.USED_F_NO_NOTIFY) == 0;
    }

    /**
     * The next used entry the driver has not read, or empty. Frees the chain's descriptors if this
     * driver wrote it. {@code written}: the first {@code min(len, writable bytes)} bytes of its
     * writable buffers (empty for chains written raw).
     */
    public Optional<Used> used() {
        if (usedIdx() == usedSeen) {
            return Optional.empty();
        }
        long element = usedRing + 4 + 8L * (usedSeen & (size - 1));
        int id = memory.read32(element);
        int length = memory.read32(element + 4);
        usedSeen = (usedSeen + 1) & 0xffff;
        int[] indices = taken.remove(id);
        if (indices != null) {
            for (int i : indices) {
                free.add(i);
            }
        }
        List<Placed> writable = writableOf.remove(id);
        return Optional.of(new Used(id, length, gather(writable == null ? List.of() : writable, length)));
    }

    /** Every used entry not yet read, in order. */
    public List<Used> usedAll() {
        List<Used> all = new ArrayList<>();
        for (Optional<Used> u = used(); u.isPresent(); u = used()) {
            all.add(u.get());
        }
        return all;
    }

    private byte[] gather(List<Placed> writable, int length) {
        long total = 0;
        for (Placed p : writable) {
            total += p.length();
        }
        int n = (int) Math.min(Integer.toUnsignedLong(length), total);
        byte[] out = new byte[n];
        int at = 0;
        for (Placed p : writable) {
            int take = Math.min(p.length(), n - at);
            if (take > 0) {
                System.arraycopy(memory.read(p.address(), take), 0, out, at, take);
                at += take;
            }
        }
        return out;
    }

    @Override
    public void close() {
        if (ownsMemory) {
            memory.close();
        }
    }
}
