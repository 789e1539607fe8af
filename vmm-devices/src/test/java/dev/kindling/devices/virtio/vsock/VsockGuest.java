package dev.kindling.devices.virtio.vsock;

import dev.kindling.devices.virtio.FakeVirtioContext;
import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Predicate;

/**
 * The guest side of a {@link VirtioVsock} for tests, as the Linux driver drives it: rx buffers posted
 * up front and again once read (one 4 KiB descriptor each, or with {@code splitRx} a 44-byte header
 * descriptor and a 4 KiB payload one, as Linux 6.1 does), tx packets of a header descriptor and a
 * payload one, event buffers. Packets the device sent collect in an inbox that {@link #await} searches.
 * Used from the test thread only.
 */
final class VsockGuest implements AutoCloseable {
    static final long CID = 3;
    static final long FEATURES = VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX | 1L << VsockHeader.F_STREAM;
    static final int RX_BUF = 4096;
    static final int TX_SLOTS = 64;
    static final int TX_PAYLOAD = 64 * 1024;
    static final Duration WAIT = Duration.ofSeconds(10);

    private static final long BASE = VirtqueueDriver.RAM_BASE;
    private static final long RX_AREA = BASE + (1 << 20);
    private static final long TX_AREA = BASE + (2 << 20);
    private static final long EV_AREA = BASE + (7 << 20);
    private static final long TX_SLOT = 64 + TX_PAYLOAD;

    /** One packet from the device. */
    record Packet(long srcCid, long dstCid, int srcPort, int dstPort, int len, int type, int op, int flags, int bufAlloc,
            int fwdCnt, byte[] payload) {
        @Override
        public String toString() {
            return "Packet[op=" + op + ", " + Integer.toUnsignedString(srcPort) + "->" + Integer.toUnsignedString(dstPort)
                    + ", len=" + len + ", flags=" + flags + ", buf_alloc=" + bufAlloc + ", fwd_cnt=" + fwdCnt + "]";
        }
    }

    final GuestMemory memory;
    final VirtqueueDriver rx;
    final VirtqueueDriver tx;
    final VirtqueueDriver ev;
    final FakeVirtioContext context;
    private final boolean splitRx;
    private final int rxBuffers;
    private final ArrayDeque<Integer> freeTx = new ArrayDeque<>();
    final ArrayDeque<Packet> inbox = new ArrayDeque<>();
    final List<Integer> events = new ArrayList<>();
    private final Arena arena = Arena.ofConfined();
    private final MemorySegment scratch = arena.allocate(VsockHeader.SIZE);
    /** Whether rx buffers go back to the ring once read (a guest that stops reading does not repost). */
    boolean refill = true;
    private final ArrayDeque<Integer> unposted = new ArrayDeque<>();

    VsockGuest(boolean splitRx) {
        this(splitRx, true);
    }

    /** Without {@code postRx}, no rx buffers until {@link #postAllRx()}. */
    VsockGuest(boolean splitRx, boolean postRx) {
        this.splitRx = splitRx;
        this.memory = new GuestMemory(List.of(MemoryRegion.anonymous(BASE, 8L << 20)));
        this.rx = VirtqueueDriver.on(memory, BASE, 1 << 20, VirtioVsock.QUEUE_SIZE, FEATURES);
        this.tx = rx.sibling(VirtioVsock.QUEUE_SIZE);
        this.ev = rx.sibling(VirtioVsock.QUEUE_SIZE);
        this.context = new FakeVirtioContext(FEATURES, List.of(rx, tx, ev));
        // half the ring in either layout: descriptors 128 and up are for tests' own chains
        this.rxBuffers = VirtioVsock.QUEUE_SIZE / 2;
        if (postRx) {
            postAllRx();
        }
        for (int s = 0; s < TX_SLOTS; s++) {
            freeTx.add(s);
        }
        for (int i = 0; i < 4; i++) {
            ev.rawDescriptor(i, EV_AREA + 16L * i, 16, Virtqueue.DESC_F_WRITE, 0);
            ev.publishHead(i);
        }
    }

    void postAllRx() {
        for (int i = 0; i < rxBuffers; i++) {
            postRx(i);
        }
        context.kick(VirtioVsock.RX);
    }

    /** Posts an rx chain of raw descriptors from index 128 on (address, length, flags; chained in order). */
    void postRxChain(long[][] descriptors) {
        int first = VirtioVsock.QUEUE_SIZE / 2 + rawRx;
        for (int i = 0; i < descriptors.length; i++) {
            boolean last = i == descriptors.length - 1;
            rx.rawDescriptor(first + i, descriptors[i][0], (int) descriptors[i][1],
                    (int) descriptors[i][2] | (last ? 0 : Virtqueue.DESC_F_NEXT), last ? 0 : first + i + 1);
        }
        rawRx += descriptors.length;
        rx.publishHead(first);
        context.kick(VirtioVsock.RX);
    }

    /** Used entries of chains from {@link #postRxChain}: head to used length. */
    final Map<Integer, Integer> rawRxUsed = new HashMap<>();
    private int rawRx;

    private long rxAddress(int i) {
        return RX_AREA + (long) i * (RX_BUF + 64);
    }

    private void postRx(int i) {
        long at = rxAddress(i);
        if (splitRx) {
            rx.rawDescriptor(2 * i, at, VsockHeader.SIZE, Virtqueue.DESC_F_WRITE | Virtqueue.DESC_F_NEXT, 2 * i + 1);
            rx.rawDescriptor(2 * i + 1, at + 64, RX_BUF, Virtqueue.DESC_F_WRITE, 0);
            rx.publishHead(2 * i);
        } else {
            rx.rawDescriptor(i, at, RX_BUF, Virtqueue.DESC_F_WRITE, 0);
            rx.publishHead(i);
        }
    }

    /** Posts the rx buffers a guest that stopped reading held back. */
    void repostRx() {
        while (!unposted.isEmpty()) {
            postRx(unposted.poll());
        }
        context.kick(VirtioVsock.RX);
    }

    /** Takes what the device used: rx packets into the inbox, tx slots back, events. */
    void pump() {
        boolean reposted = false;
        for (Used u : rx.usedAll()) {
            if (u.id() >= VirtioVsock.QUEUE_SIZE / 2) {
                rawRxUsed.put(u.id(), u.length());
                continue;
            }
            int i = splitRx ? u.id() / 2 : u.id();
            long at = rxAddress(i);
            if (u.length() >= VsockHeader.SIZE) {
                MemorySegment.copy(memory.slice(at, VsockHeader.SIZE), 0, scratch, 0, VsockHeader.SIZE);
                int len = u.length() - VsockHeader.SIZE;
                long payloadAt = splitRx ? at + 64 : at + VsockHeader.SIZE;
                inbox.add(new Packet(VsockHeader.srcCid(scratch), VsockHeader.dstCid(scratch), VsockHeader.srcPort(scratch),
                        VsockHeader.dstPort(scratch), (int) VsockHeader.len(scratch), VsockHeader.type(scratch),
                        VsockHeader.op(scratch), VsockHeader.flags(scratch), VsockHeader.bufAlloc(scratch),
                        VsockHeader.fwdCnt(scratch), memory.read(payloadAt, len)));
            }
            if (refill) {
                postRx(i);
                reposted = true;
            } else {
                unposted.add(i);
            }
        }
        if (reposted) {
            context.kick(VirtioVsock.RX);
        }
        for (Used u : tx.usedAll()) {
            freeTx.add(u.id() / 2);
        }
        for (Used u : ev.usedAll()) {
            if (u.length() == 4) {
                events.add(memory.read32(EV_AREA + 16L * u.id()));
            }
            ev.rawDescriptor(u.id(), EV_AREA + 16L * u.id(), 16, Virtqueue.DESC_F_WRITE, 0);
            ev.publishHead(u.id());
        }
    }

    /** Sends a well-formed packet from the guest's {@code guestPort} to host port {@code port}. */
    void send(int op, int guestPort, int port, int flags, int bufAlloc, int fwdCnt, byte[] payload) {
        sendRaw(CID, VirtioVsock.HOST_CID, guestPort, port, payload.length, VsockHeader.TYPE_STREAM, op, flags, bufAlloc,
                fwdCnt, payload);
    }

    /** Sends any header with any payload; len is what the header says, whatever the payload's length. */
    void sendRaw(long srcCid, long dstCid, int srcPort, int dstPort, int len, int type, int op, int flags, int bufAlloc,
            int fwdCnt, byte[] payload) {
        if (payload.length > TX_PAYLOAD) {
            throw new IllegalArgumentException("payload larger than a tx slot");
        }
        int s = txSlot();
        long at = TX_AREA + s * TX_SLOT;
        VsockHeader.write(scratch, srcCid, dstCid, srcPort, dstPort, len, type, op, flags, bufAlloc, fwdCnt);
        MemorySegment.copy(scratch, 0, memory.slice(at, VsockHeader.SIZE), 0, VsockHeader.SIZE);
        if (payload.length == 0) {
            tx.rawDescriptor(2 * s, at, VsockHeader.SIZE, 0, 0);
        } else {
            memory.write(at + 64, payload);
            tx.rawDescriptor(2 * s, at, VsockHeader.SIZE, Virtqueue.DESC_F_NEXT, 2 * s + 1);
            tx.rawDescriptor(2 * s + 1, at + 64, payload.length, 0, 0);
        }
        tx.publishHead(2 * s);
        context.kick(VirtioVsock.TX);
    }

    /** Sends a chain of raw descriptors as given (address, length, flags; chained in order). */
    void sendChain(long[][] descriptors) {
        int s = txSlot();
        if (descriptors.length > 2) {
            throw new IllegalArgumentException("a slot has two descriptors");
        }
        for (int i = 0; i < descriptors.length; i++) {
            boolean last = i == descriptors.length - 1;
            tx.rawDescriptor(2 * s + i, descriptors[i][0], (int) descriptors[i][1],
                    (int) descriptors[i][2] | (last ? 0 : Virtqueue.DESC_F_NEXT), last ? 0 : 2 * s + i + 1);
        }
        tx.publishHead(2 * s);
        context.kick(VirtioVsock.TX);
    }

    /** Guest memory for raw chains: in the last tx slot's payload area, which {@link #sendRaw} never reaches. */
    long spareArea() {
        return EV_AREA + 4096;
    }

    /** Waits until the device has returned every tx chain sent so far: it has served them all. */
    void awaitTxReturned() {
        long end = System.nanoTime() + WAIT.toNanos();
        pump();
        while (freeTx.size() < TX_SLOTS) {
            if (System.nanoTime() > end) {
                throw new AssertionError("the device did not return tx buffers within " + WAIT);
            }
            sleep();
            pump();
        }
    }

    private int txSlot() {
        long end = System.nanoTime() + WAIT.toNanos();
        while (freeTx.isEmpty()) {
            if (System.nanoTime() > end) {
                throw new AssertionError("the device did not return tx buffers within " + WAIT);
            }
            pump();
            Thread.onSpinWait();
            sleep();
        }
        return freeTx.poll();
    }

    /** The first inbox packet that matches, waiting for it; removes it. */
    Packet await(Predicate<Packet> p, String what) {
        Optional<Packet> got = poll(p, WAIT);
        if (got.isEmpty()) {
            throw new AssertionError("no " + what + " from the device within " + WAIT + "; inbox " + inbox);
        }
        return got.get();
    }

    /** The first inbox packet that matches within {@code wait}, or empty; removes it. */
    Optional<Packet> poll(Predicate<Packet> p, Duration wait) {
        long end = System.nanoTime() + wait.toNanos();
        while (true) {
            pump();
            for (Iterator<Packet> it = inbox.iterator(); it.hasNext(); ) {
                Packet k = it.next();
                if (p.test(k)) {
                    it.remove();
                    return Optional.of(k);
                }
            }
            if (System.nanoTime() > end) {
                return Optional.empty();
            }
            sleep();
        }
    }

    static Predicate<Packet> op(int op, int guestPort) {
        return k -> k.op() == op && k.dstPort() == guestPort;
    }

    static void sleep() {
        try {
            Thread.sleep(1);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    @Override
    public void close() {
        context.close();
        arena.close();
        memory.close();
    }
}
