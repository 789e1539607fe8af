package dev.kindling.devices.virtio.net;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import dev.kindling.devices.virtio.VirtioContext;
import dev.kindling.devices.virtio.VirtioDevice;
import dev.kindling.devices.virtio.VirtioIds;
import dev.kindling.devices.virtio.VirtioWorker;
import dev.kindling.devices.virtio.VirtioWorkers;
import dev.kindling.devices.virtio.queue.Descriptor;
import dev.kindling.devices.virtio.queue.DescriptorChain;
import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.devices.virtio.queue.VirtqueueException;
import dev.kindling.memory.GuestMemory;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.sys.Epoll;
import dev.kindling.sys.Fd;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * virtio-net (virtio 1.2 section 5.1, device ID 1): one receive and one transmit queue, the MAC in
 * configuration space, mergeable receive buffers, and, when the backend takes vnet headers,
 * checksum and TCP segmentation offloads both ways.
 *
 * <p>One device thread serves both queues and the backend, a bounded number of frames each way per
 * round. <b>Transmit:</b> each chain's device-readable bytes (header and frame, at most
 * {@link #MAX_PACKET}) are gathered and handed to {@link NetBackend#send}, with the header if the
 * backend takes it, else without. A chain that is too long, too short for a header and an Ethernet
 * header, has device-writable buffers, or whose header asks for an offload that was not negotiated
 * is dropped and returned like a sent one. <b>Receive:</b> a frame from {@link NetBackend#receive}
 * goes into one chain, or with MRG_RXBUF over as many as it needs ({@code num_buffers} says how
 * many). A frame that does not fit one chain without MRG_RXBUF is dropped. With no receive buffers
 * posted the device holds one frame, stops watching the backend (the rest waits there) and goes on
 * when the driver posts buffers. A header from the backend that uses an offload the guest did not
 * accept is repaired (a partial checksum is completed) or the frame dropped (GSO).
 *
 * <p>Nothing the guest or the backend sends makes the device throw: malformed chains and frames are
 * dropped and counted ({@link #statistics()}); a queue the driver broke sets DEVICE_NEEDS_RESET; a
 * backend that throws is reported once and its frames are dropped from then on.
 */
public final class VirtioNet implements VirtioDevice {
    private static final System.Logger LOG = System.getLogger(VirtioNet.class.getName());

    /** {@code struct virtio_net_hdr_v1}: the header before every frame, with VERSION_1 or MRG_RXBUF. */
    public static final int VNET_HEADER_SIZE = 12;
    /**
     * The largest frame either way without its header: a 64 KiB IP packet (65535 bytes) after an
     * Ethernet header with a VLAN tag. The largest frame every backend moves too.
     */
    public static final int MAX_FRAME = 65535 + 18;
    /** The largest header and frame the device moves. */
    public static final int MAX_PACKET = VNET_HEADER_SIZE + MAX_FRAME;
    static final int ETHER_HEADER = 14;

    /** Feature bits (virtio 1.2 section 5.1.3). */
    public static final long CSUM = 1L << 0, GUEST_CSUM = 1L << 1, MAC = 1L << 5, GUEST_TSO4 = 1L << 7,
            GUEST_TSO6 = 1L << 8, GUEST_ECN = 1L << 9, GUEST_UFO = 1L << 10, HOST_TSO4 = 1L << 11,
            HOST_TSO6 = 1L << 12, HOST_ECN = 1L << 13, HOST_UFO = 1L << 14, MRG_RXBUF = 1L << 15, STATUS = 1L << 16;
    /** What a backend with vnet headers lets the device offer, as Firecracker does for a tap: no UFO, so UDP segmentation is refused. */
    public static final long OFFLOADS = CSUM | GUEST_CSUM | HOST_TSO4 | HOST_TSO6 | HOST_ECN
            | GUEST_TSO4 | GUEST_TSO6 | GUEST_ECN;
    /** The offloads for frames the guest receives: what {@link NetBackend#setGuestOffloads} is given. */
    public static final long GUEST_OFFLOADS = GUEST_CSUM | GUEST_TSO4 | GUEST_TSO6 | GUEST_ECN;

    static final int RX_QUEUE = 0;
    static final int TX_QUEUE = 1;
    private static final int QUEUE_SIZE = 256;
    /** Frames each way per round, so that one busy direction does not starve the other or a stop. */
    static final int BUDGET = 64;
    /**
     * Rounds in a row in which the backend's fd was readable but it had no frame (a peer gone, a
     * backend bug): the device then stops watching it for {@link #SPURIOUS_BACKOFF_MILLIS} rather
     * than spin on a level-triggered fd.
     */
    static final int SPURIOUS_LIMIT = 16;
    static final int SPURIOUS_BACKOFF_MILLIS = 20;

    private static final ValueLayout.OfShort BE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);

    /**
     * What the device moved and dropped since it was made. Received and sent bytes are Ethernet
     * bytes, without the vnet header. {@code rxDropped}: frames the backend gave that no guest buffer
     * got (did not fit, an offload the guest did not accept, malformed). {@code txDropped}: transmit
     * chains that were not sent (malformed, or the backend refused or failed). {@code badChains}:
     * chains the driver got wrong on either queue, returned with nothing done.
     */
    public record Statistics(long rxFrames, long rxBytes, long rxDropped, long txFrames, long txBytes, long txDropped,
                             long badChains) {}

    private final String name;
    private final MacAddress mac;
    private final NetBackend backend;
    private final VirtioWorkers workers;
    private final byte[] config;
    // written by the device thread only (one activation's thread at a time, joined before the next starts)
    private volatile long rxFrames, rxBytes, rxDropped, txFrames, txBytes, txDropped, badChains;
    private volatile boolean backendFailed;
    /** Rounds the device thread has served: how often it woke, to show it does not spin. */
    private volatile long rounds;

    /** A device with guest MAC {@code mac} on {@code backend}, which it closes with itself. */
    public VirtioNet(String name, MacAddress mac, NetBackend backend) {
        this.name = Objects.requireNonNull(name, "name");
        this.mac = Objects.requireNonNull(mac, "mac");
        this.backend = Objects.requireNonNull(backend, "backend");
        this.workers = new VirtioWorkers(name);
        MemorySegment c = MemorySegment.ofArray(new byte[(int) NetAbi.CONFIG.byteSize()]);
        MemorySegment.copy(mac.bytes(), 0, c, JAVA_BYTE, NetAbi.CONFIG_MAC, 6);
        c.set(JAVA_SHORT_UNALIGNED, NetAbi.CONFIG_STATUS, (short) NetAbi.S_LINK_UP);
        c.set(JAVA_SHORT_UNALIGNED, NetAbi.CONFIG_MAX_VIRTQUEUE_PAIRS, (short) 1);
        this.config = c.toArray(JAVA_BYTE);
    }

    public MacAddress mac() {
        return mac;
    }

    /** The counters as they are now (each read on its own: a snapshot of a busy device is approximate). */
    public Statistics statistics() {
        return new Statistics(rxFrames, rxBytes, rxDropped, txFrames, txBytes, txDropped, badChains);
    }

    /** The rounds the device thread has served since the device was made. */
    long rounds() {
        return rounds;
    }

    @Override
    public int deviceType() {
        return VirtioIds.NET;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long features() {
        return MAC | STATUS | MRG_RXBUF | (backend.vnetHeader() ? OFFLOADS : 0);
    }

    @Override
    public int queueCount() {
        return 2;
    }

    @Override
    public int queueMaxSize(int index) {
        return QUEUE_SIZE;
    }

    @Override
    public int configSize() {
        return config.length;
    }

    @Override
    public long readConfig(int offset, int size) {
        long v = 0;
        for (int i = size - 1; i >= 0; i--) {
            int at = offset + i;
            v = v << 8 | (at >= 0 && at < config.length ? config[at] & 0xff : 0);
        }
        return v;
    }

    @Override
    public void writeConfig(int offset, int size, long value) {}

    @Override
    public void activate(VirtioContext context) {
        workers.activate(context, a -> {
            // before the thread starts: the backend is used by one thread at a time
            if (backend.vnetHeader()) {
                try {
                    backend.setGuestOffloads(context.features() & GUEST_OFFLOADS);
                } catch (RuntimeException e) {
                    context.reportFatal(name + ": the backend refused the guest's offloads", e);
                }
            }
            Server s = new Server(context);
            try {
                a.start("net", List.of(context.queueNotifier(RX_QUEUE), context.queueNotifier(TX_QUEUE)),
                        List.of(s.backendPoll.fd()), w -> {
                            s.worker = w;
                            return s;
                        });
            } catch (RuntimeException | Error e) {
                s.free();
                throw e;
            }
        });
    }

    @Override
    public void reset() {
        workers.reset();
    }

    /**
     * Not yet: the backend (a tap, a passt process) belongs to this machine, and the receive side
     * holds chains and a frame between rounds ({@code Server.rxChains}, {@code held}).
     */
    @Override
    public void saveState(StateWriter out) {
        throw new SnapshotException("virtio-net cannot be snapshotted yet (" + name + ")");
    }

    @Override
    public void quiesce() {
        workers.quiesce();
    }

    @Override
    public void resume() {
        workers.resume();
    }

    @Override
    public void close() {
        if (workers.close()) {
            backend.close();
        }
    }

    @Override
    public String toString() {
        return name + " (virtio-net " + mac + ")";
    }

    private void backendFailed(VirtioContext context, String what, Throwable cause) {
        if (!backendFailed) {
            backendFailed = true;
            context.reportFatal(name + ": the backend failed to " + what + "; its frames are dropped from now on", cause);
        }
    }

    /**
     * One activation: the two queues, the staging buffers, and the receive state (the frame and
     * chains waiting for each other). Used by its thread only.
     */
    private final class Server implements VirtioWorker.Body {
        private final VirtioContext context;
        private final GuestMemory memory;
        private final Virtqueue rxq;
        private final Virtqueue txq;
        private final long features;
        private final boolean mergeable;
        private final Arena arena = Arena.ofShared();
        private final MemorySegment txStage;
        private final MemorySegment rxStage;
        private final MemorySegment rxHeader;
        private final MemorySegment rxPayload;
        /** Holds the backend's fd while the device wants frames: its own fd is what the worker watches. */
        private final Epoll backendPoll;
        private final Fd backendFd;
        private boolean watching;
        /** Set before the thread starts. */
        private VirtioWorker worker;
        /** Bytes (header included) of the frame in {@link #rxStage} that waits for buffers; 0 if none. */
        private int held;
        /**
         * Receive chains taken from the queue that no frame has used yet, and their writable bytes:
         * with MRG_RXBUF a frame is written only once its buffers suffice. A snapshot of a quiesced
         * device would have to give these back to the ring (they are lost on a reset, as the ring is).
         */
        private final ArrayDeque<DescriptorChain> rxChains = new ArrayDeque<>();
        private long rxCapacity;
        private boolean txUsed;
        private boolean rxUsed;
        private boolean broken;
        private int spurious;
        private long backoffUntil;

        Server(VirtioContext context) {
            this.context = context;
            this.memory = context.memory();
            this.rxq = context.queues().get(RX_QUEUE);
            this.txq = context.queues().get(TX_QUEUE);
            this.features = context.features();
            this.mergeable = (features & MRG_RXBUF) != 0;
            Epoll poll = null;
            try {
                txStage = arena.allocate(MAX_PACKET, 8);
                rxStage = arena.allocate(MAX_PACKET, 8);
                rxHeader = rxStage.asSlice(0, VNET_HEADER_SIZE);
                rxPayload = rxStage.asSlice(VNET_HEADER_SIZE);
                backendFd = backend.readable();
                poll = Epoll.create(1);
                poll.add(backendFd, Epoll.EPOLLIN, 0);
            } catch (RuntimeException | Error e) {
                if (poll != null) {
                    poll.close();
                }
                arena.close();
                throw e;
            }
            backendPoll = poll;
            watching = true;
        }

        void free() {
            backendPoll.close();
            if (arena.scope().isAlive()) {
                arena.close();
            }
        }

        @Override
        public void ended() {
            free();
        }

        @Override
        public int serve() {
            rounds++;
            if (broken) {
                return -1;
            }
            try {
                boolean more = transmit();
                int rx = receive();
                return more ? 0 : rx;
            } catch (VirtqueueException e) {
                broken = true;
                watch(false);
                context.needsReset(name + ": " + e.getMessage());
                return -1;
            } finally {
                if (txUsed) {
                    txUsed = false;
                    context.signalUsed(TX_QUEUE);
                }
                if (rxUsed) {
                    rxUsed = false;
                    context.signalUsed(RX_QUEUE);
                }
            }
        }

        /** Sends up to {@link #BUDGET} chains; true if more may be waiting. */
        private boolean transmit() throws VirtqueueException {
            if (!txq.ready()) {
                return false;
            }
            for (int n = 0; n < BUDGET; n++) {
                if (worker.yieldAsked()) {
                    return true;
                }
                Optional<DescriptorChain> next;
                try {
                    next = txq.pop(memory);
                } catch (VirtqueueException.InvalidChain e) {
                    txq.addUsed(memory, e.head(), 0);
                    txUsed = true;
                    badChains++;
                    txDropped++;
                    continue;
                }
                if (next.isEmpty()) {
                    if (txq.setNotificationsEnabled(memory, true)) {
                        continue; // chains arrived while enabling
                    }
                    return false;
                }
                DescriptorChain chain = next.get();
                send(chain);
                txq.addUsed(memory, chain.head(), 0);
                txUsed = true;
            }
            return true;
        }

        private void send(DescriptorChain chain) {
            long length = chain.readableLength();
            if (!chain.writable().isEmpty() || length > MAX_PACKET || length < VNET_HEADER_SIZE + ETHER_HEADER) {
                badChains++;
                txDropped++;
                return;
            }
            long at = 0;
            for (Descriptor d : chain.readable()) {
                MemorySegment.copy(memory.slice(d.address(), d.length()), 0, txStage, at, d.length());
                at += d.length();
            }
            int frameLength = (int) length - VNET_HEADER_SIZE;
            if (!offloadsNegotiated(frameLength)) {
                txDropped++;
                return;
            }
            if (backendFailed) {
                txDropped++;
                return;
            }
            boolean sent;
            try {
                sent = backend.send(backend.vnetHeader() ? txStage.asSlice(0, length) : txStage.asSlice(VNET_HEADER_SIZE, frameLength));
            } catch (RuntimeException e) {
                backendFailed(context, "send", e);
                sent = false;
            }
            if (sent) {
                txFrames++;
                txBytes += frameLength;
            } else {
                txDropped++;
            }
        }

        /**
         * Whether the staged transmit header asks only for what was negotiated: a partial checksum
         * (inside the frame) with CSUM, TCP segmentation with HOST_TSO4/6 (and ECN with HOST_ECN).
         * Without a vnet header in the backend none of these is offered, so any request fails here.
         */
        private boolean offloadsNegotiated(int frameLength) {
            int flags = Byte.toUnsignedInt(txStage.get(JAVA_BYTE, NetAbi.HDR_FLAGS));
            int gso = Byte.toUnsignedInt(txStage.get(JAVA_BYTE, NetAbi.HDR_GSO_TYPE));
            if ((flags & ~NetAbi.HDR_F_NEEDS_CSUM) != 0) {
                return false; // DATA_VALID and RSC_INFO are the device's to set
            }
            if ((flags & NetAbi.HDR_F_NEEDS_CSUM) != 0) {
                int start = Short.toUnsignedInt(txStage.get(JAVA_SHORT, NetAbi.HDR_CSUM_START));
                int offset = Short.toUnsignedInt(txStage.get(JAVA_SHORT, NetAbi.HDR_CSUM_OFFSET));
                if ((features & CSUM) == 0 || start + offset + 2 > frameLength) {
                    return false;
                }
            }
            if (gso == NetAbi.GSO_NONE) {
                return true;
            }
            boolean ok = switch (gso & ~NetAbi.GSO_ECN) {
                case NetAbi.GSO_TCPV4 -> (features & HOST_TSO4) != 0;
                case NetAbi.GSO_TCPV6 -> (features & HOST_TSO6) != 0;
                default -> false;
            };
            if ((gso & NetAbi.GSO_ECN) != 0) {
                ok &= (features & HOST_ECN) != 0;
            }
            // segmentation needs the checksum filled in per segment, and a segment size
            return ok && (flags & NetAbi.HDR_F_NEEDS_CSUM) != 0 && txStage.get(JAVA_SHORT, NetAbi.HDR_GSO_SIZE) != 0;
        }

        /**
         * Moves up to {@link #BUDGET} frames from the backend to the guest. Returns the worker's
         * timeout: 0 if more may be waiting, -1 to wait for a signal, or a backoff.
         */
        private int receive() throws VirtqueueException {
            if (!rxq.ready() || backendFailed) {
                watch(false);
                return -1;
            }
            if (backoffUntil != 0) {
                long left = backoffUntil - System.nanoTime();
                if (left > 0) {
                    return (int) (left / 1_000_000) + 1;
                }
                backoffUntil = 0;
                if (held == 0) {
                    watch(true);
                }
            }
            for (int n = 0; n < BUDGET; n++) {
                if (worker.yieldAsked()) {
                    return 0;
                }
                if (held == 0) {
                    held = nextFrame();
                    if (held < 0) {
                        return -1; // the backend failed
                    }
                    if (held == 0) {
                        return n == 0 ? checkSpurious() : -1;
                    }
                    spurious = 0;
                }
                if (!deliver()) {
                    // no buffers: the frame waits here, the rest in the backend, until the driver posts some
                    watch(false);
                    if (rxq.setNotificationsEnabled(memory, true)) {
                        continue; // buffers arrived while enabling
                    }
                    return -1;
                }
                watch(true);
            }
            return 0;
        }

        /**
         * The backend had nothing though the round may have been for it: if its fd stays readable
         * round after round, it is not looked at for a while.
         */
        private int checkSpurious() {
            if (!watching || backendPoll.wait(0) == 0) {
                spurious = 0;
                return -1;
            }
            if (++spurious < SPURIOUS_LIMIT) {
                return -1;
            }
            spurious = 0;
            LOG.log(Level.DEBUG, () -> name + ": the backend's fd stays readable without frames; looking again in "
                    + SPURIOUS_BACKOFF_MILLIS + " ms");
            watch(false);
            backoffUntil = System.nanoTime() + SPURIOUS_BACKOFF_MILLIS * 1_000_000L;
            return SPURIOUS_BACKOFF_MILLIS;
        }

        /**
         * Reads the next frame into {@link #rxStage} with a header the guest may be given; returns its
         * length with the header, 0 if the backend has none, -1 if the backend failed. Frames that
         * cannot be given are dropped here.
         */
        private int nextFrame() {
            for (int tries = 0; tries < BUDGET; tries++) {
                boolean withHeader = backend.vnetHeader();
                MemorySegment into = withHeader ? rxStage : rxPayload;
                int got;
                try {
                    got = backend.receive(into);
                } catch (RuntimeException e) {
                    backendFailed(context, "receive", e);
                    watch(false);
                    return -1;
                }
                if (got < 0 || got > into.byteSize()) {
                    backendFailed(context, "receive", new IllegalStateException("receive returned " + got
                            + " for a buffer of " + into.byteSize() + " bytes"));
                    watch(false);
                    return -1;
                }
                if (got == 0) {
                    return 0;
                }
                int length = withHeader ? got : got + VNET_HEADER_SIZE;
                if (!withHeader) {
                    rxHeader.fill((byte) 0);
                }
                if (length < VNET_HEADER_SIZE + ETHER_HEADER || !guestMayTake(length)) {
                    rxDropped++;
                    continue;
                }
                return length;
            }
            return 0; // the next round goes on
        }

        /**
         * Fits the staged header to the offloads the guest accepted: a partial checksum it cannot
         * take is completed here, DATA_VALID cleared; false (drop) for segmentation it did not accept.
         */
        private boolean guestMayTake(int length) {
            int flags = Byte.toUnsignedInt(rxStage.get(JAVA_BYTE, NetAbi.HDR_FLAGS));
            int gso = Byte.toUnsignedInt(rxStage.get(JAVA_BYTE, NetAbi.HDR_GSO_TYPE));
            if (gso != NetAbi.GSO_NONE) {
                boolean ok = switch (gso & ~NetAbi.GSO_ECN) {
                    case NetAbi.GSO_TCPV4 -> (features & GUEST_TSO4) != 0;
                    case NetAbi.GSO_TCPV6 -> (features & GUEST_TSO6) != 0;
                    default -> false;
                };
                if (!ok || ((gso & NetAbi.GSO_ECN) != 0 && (features & GUEST_ECN) == 0)) {
                    return false;
                }
            }
            int kept = flags & (NetAbi.HDR_F_NEEDS_CSUM | NetAbi.HDR_F_DATA_VALID);
            if ((features & GUEST_CSUM) == 0) {
                if ((kept & NetAbi.HDR_F_NEEDS_CSUM) != 0 && !completeChecksum(length - VNET_HEADER_SIZE)) {
                    return false;
                }
                kept = 0;
            }
            rxStage.set(JAVA_BYTE, NetAbi.HDR_FLAGS, (byte) kept);
            return true;
        }

        /** Fills in the Internet checksum a NEEDS_CSUM header describes; false if it lies outside the frame. */
        private boolean completeChecksum(int frameLength) {
            int start = Short.toUnsignedInt(rxStage.get(JAVA_SHORT, NetAbi.HDR_CSUM_START));
            int offset = Short.toUnsignedInt(rxStage.get(JAVA_SHORT, NetAbi.HDR_CSUM_OFFSET));
            if (start + offset + 2 > frameLength) {
                return false;
            }
            MemorySegment frame = rxPayload;
            long sum = 0;
            int i = start;
            for (; i + 1 < frameLength; i += 2) {
                sum += Short.toUnsignedInt(frame.get(BE16, i));
            }
            if (i < frameLength) {
                sum += Byte.toUnsignedInt(frame.get(JAVA_BYTE, i)) << 8;
            }
            while ((sum >>> 16) != 0) {
                sum = (sum & 0xffff) + (sum >>> 16);
            }
            // as Linux's skb_checksum_help: a UDP checksum of 0 means "none", so it is sent as 0xffff
            // (the same value in ones' complement, harmless for TCP)
            int folded = (int) ~sum & 0xffff;
            frame.set(BE16, start + offset, (short) (folded == 0 ? 0xffff : folded));
            return true;
        }

        /**
         * Gives the held frame to the guest; false if the posted buffers do not suffice yet (the frame
         * stays held). A frame that can never fit is dropped (true).
         */
        private boolean deliver() throws VirtqueueException {
            if (!mergeable) {
                DescriptorChain chain = rxChains.isEmpty() ? takeRxChain() : rxChains.poll();
                if (chain == null) {
                    return false;
                }
                if (chain.writableLength() < held) {
                    rxChains.addFirst(chain); // for a frame that fits
                    rxDropped++;
                    held = 0;
                    return true;
                }
                rxStage.set(JAVA_SHORT, NetAbi.HDR_NUM_BUFFERS, (short) 1);
                rxq.addUsed(memory, chain.head(), write(chain, 0, held));
                delivered();
                return true;
            }
            while (rxCapacity < held) {
                if (rxChains.size() >= rxq.size()) {
                    rxDropped++; // every buffer the driver can post would not hold it
                    held = 0;
                    return true;
                }
                DescriptorChain chain = takeRxChain();
                if (chain == null) {
                    return false;
                }
                rxChains.add(chain);
                rxCapacity += chain.writableLength();
            }
            int count = 0;
            long capacity = 0;
            for (DescriptorChain c : rxChains) {
                count++;
                capacity += c.writableLength();
                if (capacity >= held) {
                    break;
                }
            }
            rxStage.set(JAVA_SHORT, NetAbi.HDR_NUM_BUFFERS, (short) count);
            int at = 0;
            for (int i = 0; i < count; i++) {
                DescriptorChain c = rxChains.poll();
                rxCapacity -= c.writableLength();
                int n = write(c, at, held - at);
                rxq.addUsed(memory, c.head(), n);
                at += n;
            }
            delivered();
            return true;
        }

        private void delivered() {
            rxFrames++;
            rxBytes += held - VNET_HEADER_SIZE;
            held = 0;
            rxUsed = true;
        }

        /**
         * The next usable receive chain, or null if the driver posted none. Chains it got wrong
         * (device-readable buffers, less room than a header) are returned unused.
         */
        private DescriptorChain takeRxChain() throws VirtqueueException {
            while (true) {
                Optional<DescriptorChain> next;
                try {
                    next = rxq.pop(memory);
                } catch (VirtqueueException.InvalidChain e) {
                    rxq.addUsed(memory, e.head(), 0);
                    rxUsed = true;
                    badChains++;
                    continue;
                }
                if (next.isEmpty()) {
                    return null;
                }
                DescriptorChain chain = next.get();
                if (!chain.readable().isEmpty() || chain.writableLength() < VNET_HEADER_SIZE) {
                    rxq.addUsed(memory, chain.head(), 0);
                    rxUsed = true;
                    badChains++;
                    continue;
                }
                return chain;
            }
        }

        /** Copies {@code length} bytes of {@link #rxStage} from {@code from} into the chain's buffers; returns how many fit. */
        private int write(DescriptorChain chain, int from, int length) {
            int done = 0;
            for (Descriptor d : chain.writable()) {
                if (done == length) {
                    break;
                }
                int n = (int) Math.min(Integer.toUnsignedLong(d.length()), length - done);
                MemorySegment.copy(rxStage, from + done, memory.slice(d.address(), n), 0, n);
                done += n;
            }
            return done;
        }

        private void watch(boolean on) {
            if (on == watching || (on && backoffUntil != 0)) {
                return;
            }
            if (on) {
                backendPoll.add(backendFd, Epoll.EPOLLIN, 0);
            } else {
                backendPoll.remove(backendFd);
            }
            watching = on;
        }
    }
}
