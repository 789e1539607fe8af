package dev.kindling.devices.virtio.vsock;

import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_CREDIT_REQUEST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_CREDIT_UPDATE;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_REQUEST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RESPONSE;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RW;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_SHUTDOWN;
import static dev.kindling.devices.virtio.vsock.VsockHeader.SHUTDOWN_RCV;
import static dev.kindling.devices.virtio.vsock.VsockHeader.SHUTDOWN_SEND;
import static dev.kindling.devices.virtio.vsock.VsockHeader.SIZE;
import static dev.kindling.devices.virtio.vsock.VsockHeader.TYPE_STREAM;

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
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.sys.Epoll;
import dev.kindling.sys.Errno;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * virtio-vsock (virtio 1.2 section 5.10, device ID 19): the rx, tx and event queues, the guest's
 * CID in configuration space, and the table of stream connections between guest ports and host
 * stream sockets, which the device thread relays both ways within the peers' credit.
 *
 * <p><b>Flow control.</b> The device sends the guest at most the credit the guest advertised
 * ({@code buf_alloc - (tx_cnt - fwd_cnt)}) and reads a host socket only while that credit and rx
 * buffers exist; otherwise it stops watching the socket, and the host writer blocks once the socket
 * is full. Guest data that the host socket does not take at once is buffered, at most
 * {@link #BUF_ALLOC} bytes per connection, the buffer the device advertises; a guest that sends past
 * it is reset. So neither side is buffered without bound.
 *
 * <p><b>Ending.</b> End of stream on the host socket is a SHUTDOWN(SEND) to the guest, and a hang-up
 * after it (the host closed both ways) a full SHUTDOWN as below; the guest's
 * SHUTDOWN(SEND) is a {@code shutdown(SHUT_WR)} of the socket once its buffered data is written,
 * SHUTDOWN(RCV) a {@code shutdown(SHUT_RD)}. When the guest has shut both ways the device answers
 * RST and closes the socket; when both directions ended otherwise it sends a full SHUTDOWN and waits
 * {@link #CLOSE_TIMEOUT} for the guest's RST. A socket error is a RST; a guest RST closes the socket.
 * Malformed packets reset the connection they name, or get a RST back, or (without a readable
 * header) are dropped.
 */
public final class VirtioVsock implements VirtioDevice {
    private static final System.Logger LOG = System.getLogger(VirtioVsock.class.getName());

    /** The host's CID, as the guest addresses it. */
    public static final long HOST_CID = 2;
    /** Connections at once, as Firecracker allows. */
    public static final int MAX_CONNECTIONS = 1023;
    /** Where the ports of host-initiated connections start (and wrap back to below 2^31), as in Firecracker. */
    public static final int FIRST_HOST_PORT = 1 << 30;
    /** The guest-to-host buffer of each connection, advertised to the guest as buf_alloc (Firecracker's size). */
    public static final int BUF_ALLOC = 256 * 1024;
    /** How long a host-initiated connection waits for the guest's RESPONSE (Firecracker's bound). */
    public static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(2);
    /** How long a connection whose both directions ended waits for the guest's RST. */
    public static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(2);

    static final int QUEUE_SIZE = 256;
    private static final int CONFIG_SIZE = (int) VsockHeader.CONFIG.byteSize();
    static final int RX = 0, TX = 1, EVENT = 2;
    /** The most payload in one packet to the guest (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
    static final int MAX_PACKET = 64 * 1024;
    /** RSTs for packets without a connection waiting for rx buffers; more are dropped. */
    private static final int MAX_REPLIES = 4096;
    private static final int TX_BUDGET = 256, RX_BUDGET = 512;

    /**
     * How a host-initiated connection ended up, told exactly once: on the device thread, or on the
     * caller's thread when {@link #connect} refuses at once (no driver running, the device full).
     */
    public interface ConnectCallback {
        /** The guest accepted: relaying starts once this returns. {@code hostPort} is the connection's local port. */
        void connected(int hostPort);

        /** The guest refused (RST), did not answer in time, or the device is not in use or full. */
        void refused(String why);
    }

    private final String name;
    private final long guestCid;
    private final VsockHost host;
    private final long connectNanos;
    private final long closeNanos;
    private final VirtioWorkers workers;
    // guarded by this
    private Server current;
    /** Restored from a snapshot: the next activation starts with VIRTIO_VSOCK_EVENT_TRANSPORT_RESET. */
    private boolean resetOnActivate;

    /**
     * A device for a guest with CID {@code guestCid} (3 and up, below 2^32 - 1), whose guest-initiated
     * connections {@code host} answers.
     */
    public VirtioVsock(String name, long guestCid, VsockHost host) {
        this(name, guestCid, host, CONNECT_TIMEOUT, CLOSE_TIMEOUT);
    }

    VirtioVsock(String name, long guestCid, VsockHost host, Duration connectTimeout, Duration closeTimeout) {
        this.name = Objects.requireNonNull(name, "name");
        if (guestCid < 3 || guestCid >= 0xFFFF_FFFFL) {
            throw new IllegalArgumentException("guest CID " + guestCid + " is reserved or too large: use 3 to 4294967294");
        }
        this.guestCid = guestCid;
        this.host = Objects.requireNonNull(host, "host");
        this.connectNanos = connectTimeout.toNanos();
        this.closeNanos = closeTimeout.toNanos();
        this.workers = new VirtioWorkers(name);
    }

    public long guestCid() {
        return guestCid;
    }

    /**
     * Asks the guest for a connection to its port {@code guestPort}, relayed to {@code stream} (a
     * connected stream socket, which the device owns from now on and closes when the connection ends
     * or is refused). Returns at once; {@code callback} tells the outcome on the device thread, or on
     * the caller's thread when the device is not in use by a driver.
     */
    public void connect(int guestPort, Fd stream, ConnectCallback callback) {
        Objects.requireNonNull(stream, "stream");
        Objects.requireNonNull(callback, "callback");
        Server s;
        synchronized (this) {
            s = current;
        }
        String refused = s == null ? name + " is not in use by a driver" : s.offer(new PendingConnect(guestPort, stream, callback));
        if (refused != null) {
            stream.close();
            callback.refused(refused);
        }
    }

    /**
     * Drops every connection (the host ends see end of stream) and sends the driver
     * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, after which it re-reads the guest CID, as after a snapshot
     * restore.
     */
    public void resetTransport() {
        Server s;
        synchronized (this) {
            s = current;
        }
        if (s != null) {
            s.askReset();
        }
    }

    /** Connections open or being opened now. */
    public int connections() {
        Server s;
        synchronized (this) {
            s = current;
        }
        return s == null ? 0 : s.count();
    }

    @Override
    public int deviceType() {
        return VirtioIds.VSOCK;
    }

    @Override
    public String name() {
        return name;
    }

    /**
     * VIRTIO_VSOCK_F_STREAM: virtio 1.2 drivers that do not assume streams look for it; older ones
     * (Linux 6.1) do not know the bit and get streams anyway. Seqpacket is not offered.
     */
    @Override
    public long features() {
        return 1L << VsockHeader.F_STREAM;
    }

    @Override
    public int queueCount() {
        return 3;
    }

    @Override
    public int queueMaxSize(int index) {
        return QUEUE_SIZE;
    }

    @Override
    public int configSize() {
        return CONFIG_SIZE;
    }

    @Override
    public long readConfig(int offset, int size) {
        if (offset < 0 || size < 1 || size > 8 || offset + size > CONFIG_SIZE) {
            return 0;
        }
        long v = guestCid >>> (8 * offset);
        return size == 8 ? v : v & ((1L << (8 * size)) - 1);
    }

    @Override
    public void writeConfig(int offset, int size, long value) {}

    @Override
    public void activate(VirtioContext context) {
        Server s = new Server(context);
        boolean restored;
        synchronized (this) {
            restored = resetOnActivate;
            resetOnActivate = false;
        }
        if (restored) {
            s.askReset(); // before its thread starts: the first round sends the event
        }
        try {
            workers.activate(context, a -> a.start("vsock",
                    List.of(context.queueNotifier(RX), context.queueNotifier(TX), context.queueNotifier(EVENT)),
                    List.of(s.epoll.fd()), s::bind));
        } catch (RuntimeException | Error e) {
            s.release();
            throw e;
        }
        synchronized (this) {
            current = s;
        }
    }

    @Override
    public void reset() {
        synchronized (this) {
            current = null;
            resetOnActivate = false;
        }
        workers.reset();
    }

    /**
     * Nothing of the device is saved: connections belong to the host side of the machine that was
     * snapshotted, and do not carry over to the restored one (as in Firecracker).
     */
    @Override
    public void saveState(StateWriter out) {}

    /**
     * The restored device, once its transport activates it, sends the driver
     * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, as Firecracker does: the guest drops the connections it had
     * (their host ends are gone) and reads the guest CID again, which is this device's, possibly not
     * the snapshotted one's. The guest's listening sockets stay, and this device's host side listens
     * as configured.
     */
    @Override
    public synchronized void restoreState(StateReader in) {
        resetOnActivate = true;
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
        synchronized (this) {
            current = null;
        }
        workers.close();
    }

    @Override
    public String toString() {
        return name + " (virtio-vsock, guest CID " + guestCid + ")";
    }

    private record PendingConnect(int guestPort, Fd stream, ConnectCallback callback) {}

    private enum State {
        /** Host-initiated, REQUEST sent or to be sent, waiting for the RESPONSE. */
        CONNECTING,
        ESTABLISHED,
        /** Both directions ended and a full SHUTDOWN went out: waiting for the guest's RST. */
        CLOSING
    }

    /** Control packets a connection has to send, one rx buffer each, in this order. */
    private static final int P_REQUEST = 1, P_RESPONSE = 2, P_SHUTDOWN = 4, P_CREDIT = 8;

    /** One connection; used by the device thread only. Counters are mod 2^32, as on the wire. */
    private static final class Conn {
        final int local;
        final int peer;
        final long key;
        final Fd fd;
        final boolean hostInitiated;
        ConnectCallback callback;
        State state;
        boolean alive = true;
        /** When the connection is given up (System.nanoTime), or 0. */
        long deadline;

        int peerBufAlloc;
        int peerFwdCnt;
        /** Payload bytes sent to the guest. */
        int txCnt;
        /** Payload bytes received from the guest, and those of them written to the socket. */
        int rxCnt;
        int fwdCnt;
        int lastFwdCntSent;

        /** Guest bytes the socket did not take yet: a ring of BUF_ALLOC bytes, made when first needed. */
        Arena bufArena;
        MemorySegment buf;
        int bufHead;
        int buffered;

        boolean hostEof;
        boolean hostWriteShut;
        boolean guestNoSend;
        boolean guestNoRecv;
        int pending;
        int shutdownFlags;
        boolean inControl;
        boolean inReadable;
        /** The epoll events asked for the socket. */
        int interest;
        /** In the epoll set (events 0 included: hang-ups and errors are reported anyway). */
        boolean registered;
        /** The socket reported a hang-up or an error: it stays out of the set while nothing is asked of it. */
        boolean hup;

        Conn(int local, int peer, Fd fd, boolean hostInitiated, ConnectCallback callback) {
            this.local = local;
            this.peer = peer;
            this.key = key(local, peer);
            this.fd = fd;
            this.hostInitiated = hostInitiated;
            this.callback = callback;
            this.state = hostInitiated ? State.CONNECTING : State.ESTABLISHED;
        }

        long credit() {
            return VirtioVsock.credit(peerBufAlloc, txCnt, peerFwdCnt);
        }

        @Override
        public String toString() {
            return "connection " + Integer.toUnsignedString(local) + " <-> guest port " + Integer.toUnsignedString(peer);
        }
    }

    /** Host ports stay in [2^30, 2^31), far from VMADDR_PORT_ANY (2^32 - 1) and the guest's own range. */
    static int portAfter(int port) {
        return port == Integer.MAX_VALUE ? FIRST_HOST_PORT : port + 1;
    }

    /**
     * What a peer with buffer {@code bufAlloc} that has consumed {@code fwdCnt} of the {@code sent}
     * bytes can take more; the counters are mod 2^32, as on the wire.
     */
    static long credit(int bufAlloc, int sent, int fwdCnt) {
        long inFlight = Integer.toUnsignedLong(sent - fwdCnt);
        long alloc = Integer.toUnsignedLong(bufAlloc);
        return inFlight >= alloc ? 0 : alloc - inFlight;
    }

    static long key(int local, int peer) {
        return ((long) local << 32) | Integer.toUnsignedLong(peer);
    }

    /** A RST for a packet with no connection (or one just dropped), from the CID the packet was for. */
    private record Reply(long fromCid, int local, int peer) {}

    /** One activation: the queues, the connections and the epoll set of their sockets. */
    private final class Server implements VirtioWorker.Body {
        final VirtioContext context;
        final GuestMemory memory;
        final Virtqueue rxq;
        final Virtqueue txq;
        final Virtqueue evq;
        final Epoll epoll;
        final Arena arena;
        /** The header of the tx packet being served, and of the rx packet being written. */
        final MemorySegment in;
        final MemorySegment out;

        final Map<Long, Conn> conns = new HashMap<>();
        final Set<Integer> hostPorts = new HashSet<>();
        final Set<Conn> timed = new HashSet<>();
        final ArrayDeque<Conn> control = new ArrayDeque<>();
        final ArrayDeque<Conn> readable = new ArrayDeque<>();
        final ArrayDeque<Reply> replies = new ArrayDeque<>();
        int nextPort = FIRST_HOST_PORT;
        /** An rx chain taken from the ring but not filled (the socket had nothing after all), given back at the round's end. */
        DescriptorChain spare;
        boolean rxStarved;
        boolean eventPending;
        boolean broken;
        boolean more;
        boolean usedRx;
        boolean usedTx;
        boolean usedEvent;
        volatile VirtioWorker worker;
        volatile int live;

        // guarded by this
        final ArrayDeque<PendingConnect> asked = new ArrayDeque<>();
        boolean resetAsked;
        boolean ended;
        /** serve() threw: the worker stops serving until a reset, so no request is taken any more. */
        boolean fatal;
        boolean released;

        Server(VirtioContext context) {
            this.context = context;
            this.memory = context.memory();
            this.rxq = context.queues().get(RX);
            this.txq = context.queues().get(TX);
            this.evq = context.queues().get(EVENT);
            this.epoll = Epoll.create(64);
            Arena a = null;
            try {
                a = Arena.ofShared();
                this.in = a.allocate(SIZE);
                this.out = a.allocate(SIZE);
            } catch (RuntimeException | Error e) {
                if (a != null) {
                    a.close();
                }
                epoll.close();
                throw e;
            }
            this.arena = a;
        }

        VirtioWorker.Body bind(VirtioWorker w) {
            this.worker = w;
            return this;
        }

        /** Queues a connect for the device thread; null, or why it is refused. */
        String offer(PendingConnect p) {
            synchronized (this) {
                if (ended || fatal) {
                    return name + " is not in use by a driver";
                }
                // bounded while the thread is paused or busy: no more than could become connections
                if (asked.size() >= MAX_CONNECTIONS - live) {
                    return name + " has " + MAX_CONNECTIONS + " connections open or asked for, the most it allows";
                }
                asked.add(p);
            }
            VirtioWorker w = worker;
            if (w != null) {
                w.wake();
            }
            return null;
        }

        void askReset() {
            synchronized (this) {
                if (ended) {
                    return;
                }
                resetAsked = true;
            }
            VirtioWorker w = worker;
            if (w != null) {
                w.wake();
            }
        }

        synchronized int count() {
            return live + asked.size();
        }

        @Override
        public int serve() {
            more = false;
            try {
                takeRequests();
                if (broken) {
                    return -1;
                }
                serveTx();
                if (rxStarved && (spare != null || rxq.hasAvailable(memory))) {
                    rxStarved = false;
                    for (Conn c : new ArrayList<>(conns.values())) {
                        updateInterest(c);
                    }
                }
                pollSockets();
                serveRx();
                postEvent();
                giveBackSpare();
                // every round: a busy device still gives up connections past their deadline
                int wait = timeouts();
                return more ? 0 : wait;
            } catch (VirtqueueException e) {
                broken = true;
                dropAll("the device needs a reset");
                context.needsReset(name + ": " + e.getMessage());
                return -1;
            } catch (RuntimeException | Error e) {
                refuseFromNowOn();
                throw e;
            } finally {
                signal();
            }
        }

        private void signal() {
            if (usedRx) {
                usedRx = false;
                context.signalUsed(RX);
            }
            if (usedTx) {
                usedTx = false;
                context.signalUsed(TX);
            }
            if (usedEvent) {
                usedEvent = false;
                context.signalUsed(EVENT);
            }
        }

        @Override
        public void ended() {
            release();
        }

        /** Closes every connection and frees the set; idempotent. */
        void release() {
            List<PendingConnect> left;
            synchronized (this) {
                ended = true;
                if (released) {
                    return;
                }
                released = true;
                left = new ArrayList<>(asked);
                asked.clear();
            }
            for (PendingConnect p : left) {
                refuse(p, name + " stopped");
            }
            dropAll(name + " stopped");
            epoll.close();
            arena.close();
        }

        /** After a failure the worker does not recover from: refuses what is queued and what comes. */
        private void refuseFromNowOn() {
            List<PendingConnect> left;
            synchronized (this) {
                fatal = true;
                left = new ArrayList<>(asked);
                asked.clear();
            }
            for (PendingConnect p : left) {
                refuse(p, name + " failed and needs a reset");
            }
        }

        // ---- requests from other threads

        private void takeRequests() {
            List<PendingConnect> batch;
            boolean reset;
            synchronized (this) {
                batch = new ArrayList<>(asked);
                asked.clear();
                reset = resetAsked;
                resetAsked = false;
            }
            if (reset && !broken) {
                dropAll("transport reset");
                eventPending = true;
            }
            for (PendingConnect p : batch) {
                startConnect(p);
            }
        }

        private void startConnect(PendingConnect p) {
            if (broken) {
                refuse(p, name + " needs a reset");
                return;
            }
            if (conns.size() >= MAX_CONNECTIONS) {
                refuse(p, name + " has " + MAX_CONNECTIONS + " connections open, the most it allows");
                return;
            }
            int port = allocatePort(p.guestPort());
            try {
                Libc.setNonBlocking(p.stream(), true);
            } catch (RuntimeException e) {
                refuse(p, "the host stream cannot be made non-blocking: " + e.getMessage());
                return;
            }
            Conn c = new Conn(port, p.guestPort(), p.stream(), true, p.callback());
            add(c);
            hostPorts.add(port);
            if (!register(c)) {
                return;
            }
            c.deadline = System.nanoTime() + connectNanos;
            timed.add(c);
            queueControl(c, P_REQUEST);
        }

        /** The next free port from FIRST_HOST_PORT on, wrapping; fewer than MAX_CONNECTIONS are taken. */
        private int allocatePort(int guestPort) {
            for (int i = 0; i <= MAX_CONNECTIONS + 1; i++) {
                int p = nextPort;
                nextPort = portAfter(p);
                if (!hostPorts.contains(p) && !conns.containsKey(key(p, guestPort))) {
                    return p;
                }
            }
            throw new IllegalStateException("no free host port with fewer than " + MAX_CONNECTIONS + " connections");
        }

        private void refuse(PendingConnect p, String why) {
            p.stream().close();
            try {
                p.callback().refused(why);
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, name + ": a connect callback threw", e);
            }
        }

        private void add(Conn c) {
            conns.put(c.key, c);
            live = conns.size();
        }

        // ---- tx: packets from the guest

        private void serveTx() throws VirtqueueException {
            for (int n = 0; n < TX_BUDGET; n++) {
                if (worker.yieldAsked()) {
                    more = true;
                    return;
                }
                Optional<DescriptorChain> next = next(txq, TX);
                if (next.isEmpty()) {
                    return;
                }
                DescriptorChain chain = next.get();
                handleTx(chain);
                txq.addUsed(memory, chain.head(), 0);
                usedTx = true;
            }
            more = true;
        }

        private void handleTx(DescriptorChain chain) {
            long readableBytes = chain.readableLength();
            if (readableBytes < SIZE) {
                LOG.log(Level.DEBUG, () -> name + ": dropped a tx chain of " + readableBytes + " readable bytes, less than a header");
                return;
            }
            gather(chain.readable(), in);
            long srcCid = VsockHeader.srcCid(in);
            long dstCid = VsockHeader.dstCid(in);
            int guestPort = VsockHeader.srcPort(in);
            int port = VsockHeader.dstPort(in);
            long len = VsockHeader.len(in);
            int type = VsockHeader.type(in);
            int op = VsockHeader.op(in);
            Conn c = conns.get(key(port, guestPort));
            String bad = null;
            if (!chain.writable().isEmpty()) {
                bad = "a tx chain with device-writable buffers";
            } else if (srcCid != guestCid) {
                bad = "source CID " + srcCid + " is not the guest's (" + guestCid + ")";
            } else if (dstCid != HOST_CID) {
                bad = "destination CID " + dstCid + " is not the host's";
            } else if (len > readableBytes - SIZE) {
                bad = "len " + len + " past the " + (readableBytes - SIZE) + " payload bytes of its chain";
            } else if (type != TYPE_STREAM) {
                bad = "type " + type + " is not a stream";
            } else if (op < OP_REQUEST || op > OP_CREDIT_REQUEST) {
                bad = "unknown op " + op;
            } else if (op != OP_RW && len != 0) {
                bad = "op " + op + " with " + len + " payload bytes";
            }
            if (bad != null) {
                malformed(c, port, guestPort, op, bad);
                return;
            }
            if (c != null) {
                c.peerBufAlloc = VsockHeader.bufAlloc(in);
                c.peerFwdCnt = VsockHeader.fwdCnt(in);
            }
            try {
                switch (op) {
                    case OP_REQUEST -> guestRequest(c, port, guestPort);
                    case OP_RESPONSE -> {
                        if (c == null || c.state != State.CONNECTING) {
                            malformed(c, port, guestPort, op, "RESPONSE without a REQUEST");
                        } else {
                            established(c);
                        }
                    }
                    case OP_RST -> {
                        if (c != null) {
                            drop(c, "the guest refused the connection (RST)");
                        }
                    }
                    case OP_SHUTDOWN -> {
                        if (c == null || c.state == State.CONNECTING) {
                            malformed(c, port, guestPort, op, "SHUTDOWN without a connection");
                        } else {
                            guestShutdown(c, VsockHeader.flags(in));
                        }
                    }
                    case OP_RW -> {
                        if (c == null || c.state == State.CONNECTING) {
                            malformed(c, port, guestPort, op, "data without a connection");
                        } else {
                            receive(c, chain, len);
                        }
                    }
                    case OP_CREDIT_UPDATE, OP_CREDIT_REQUEST -> {
                        if (c == null || c.state == State.CONNECTING) {
                            malformed(c, port, guestPort, op, "credit packet without a connection");
                        } else if (op == OP_CREDIT_REQUEST) {
                            queueControl(c, P_CREDIT);
                        }
                    }
                    default -> throw new AssertionError(op);
                }
            } catch (RuntimeException e) {
                // a host socket that fails in a way a relay does not expect (not a socket, closed under us)
                LOG.log(Level.WARNING, name + ": serving op " + op + " for host port " + Integer.toUnsignedString(port)
                        + " failed", e);
                Conn now = conns.get(key(port, guestPort));
                if (now != null) {
                    reset(now);
                }
                return;
            }
            if (c != null && c.alive) {
                updateInterest(c);
            }
        }

        private void malformed(Conn c, int port, int guestPort, int op, String why) {
            LOG.log(Level.DEBUG, () -> name + ": malformed packet from guest port " + Integer.toUnsignedString(guestPort)
                    + " to host port " + Integer.toUnsignedString(port) + ": " + why);
            if (c != null) {
                reset(c);
            } else if (op != OP_RST) {
                reply(port, guestPort);
            }
        }

        private void guestRequest(Conn existing, int port, int guestPort) {
            if (existing != null) {
                reset(existing);
                return;
            }
            if (conns.size() >= MAX_CONNECTIONS) {
                reply(port, guestPort);
                return;
            }
            Fd fd;
            try {
                fd = host.guestConnects(port, guestPort);
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, name + ": the host side failed on a connection to port " + Integer.toUnsignedString(port), e);
                fd = null;
            }
            if (fd == null) {
                reply(port, guestPort);
                return;
            }
            try {
                Libc.setNonBlocking(fd, true);
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, name + ": the host stream for port " + Integer.toUnsignedString(port) + " is unusable", e);
                fd.close();
                reply(port, guestPort);
                return;
            }
            Conn c = new Conn(port, guestPort, fd, false, null);
            c.peerBufAlloc = VsockHeader.bufAlloc(in);
            c.peerFwdCnt = VsockHeader.fwdCnt(in);
            add(c);
            if (!register(c)) {
                reply(port, guestPort);
                return;
            }
            queueControl(c, P_RESPONSE);
            updateInterest(c);
        }

        /** Puts a new connection's socket in the set; if epoll takes no such fd, resets the connection. */
        private boolean register(Conn c) {
            try {
                epoll.add(c.fd, 0, c.key);
                c.registered = true;
                return true;
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, name + ": " + c + " cannot be watched", e);
                drop(c, "the host stream cannot be watched: " + e.getMessage());
                return false;
            }
        }

        private void established(Conn c) {
            c.state = State.ESTABLISHED;
            c.deadline = 0;
            timed.remove(c);
            ConnectCallback cb = c.callback;
            c.callback = null;
            try {
                cb.connected(c.local);
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, name + ": a connect callback threw; resetting " + c, e);
                reset(c);
            }
        }

        private void guestShutdown(Conn c, int flags) {
            if ((flags & SHUTDOWN_SEND) != 0) {
                c.guestNoSend = true;
            }
            if ((flags & SHUTDOWN_RCV) != 0 && !c.guestNoRecv) {
                c.guestNoRecv = true;
                Libc.shutdown(c.fd, Libc.SHUT_RD);
            }
            progress(c);
        }

        private void receive(Conn c, DescriptorChain chain, long len) {
            if (c.guestNoSend) {
                malformed(c, c.local, c.peer, OP_RW, "data after SHUTDOWN(SEND)");
                return;
            }
            if (len == 0) {
                return;
            }
            // the credit the guest was given counts from the fwd_cnt last sent to it, never more than
            // the buffer has free
            long given = credit(BUF_ALLOC, c.rxCnt, c.lastFwdCntSent);
            if (len > given) {
                malformed(c, c.local, c.peer, OP_RW, "guest sent " + len + " bytes with " + given + " of credit");
                return;
            }
            c.rxCnt += (int) len;
            long skip = SIZE;
            long left = len;
            for (Descriptor d : chain.readable()) {
                long dl = Integer.toUnsignedLong(d.length());
                if (skip >= dl) {
                    skip -= dl;
                    continue;
                }
                long n = Math.min(dl - skip, left);
                if (!deliver(c, memory.slice(d.address() + skip, n))) {
                    reset(c);
                    return;
                }
                skip = 0;
                left -= n;
                if (left == 0) {
                    break;
                }
            }
            progress(c);
        }

        /** Writes guest data to the socket, buffering what it does not take; false if the socket is gone. */
        private boolean deliver(Conn c, MemorySegment data) {
            MemorySegment rest = data;
            if (c.buffered == 0) {
                long r = Libc.send(c.fd, data, data.byteSize(), Libc.MSG_DONTWAIT);
                if (r == -Errno.EAGAIN) {
                    r = 0;
                } else if (r < 0) {
                    return false;
                }
                c.fwdCnt += (int) r;
                rest = data.asSlice(r);
            }
            if (rest.byteSize() > 0) {
                if (c.buf == null) {
                    c.bufArena = Arena.ofShared();
                    c.buf = c.bufArena.allocate(BUF_ALLOC);
                    c.bufHead = 0;
                }
                int n = (int) rest.byteSize();
                int tail = (c.bufHead + c.buffered) % BUF_ALLOC;
                int first = Math.min(n, BUF_ALLOC - tail);
                MemorySegment.copy(rest, 0, c.buf, tail, first);
                if (first < n) {
                    MemorySegment.copy(rest, first, c.buf, 0, n - first);
                }
                c.buffered += n;
            }
            return true;
        }

        /** Writes buffered guest data to the socket until it would block; false if the socket is gone. */
        private boolean flush(Conn c) {
            while (c.buffered > 0) {
                int n = Math.min(c.buffered, BUF_ALLOC - c.bufHead);
                long r = Libc.send(c.fd, c.buf.asSlice(c.bufHead, n), n, Libc.MSG_DONTWAIT);
                if (r == -Errno.EAGAIN) {
                    return true;
                }
                if (r < 0) {
                    return false;
                }
                c.bufHead = (int) ((c.bufHead + r) % BUF_ALLOC);
                c.buffered -= (int) r;
                c.fwdCnt += (int) r;
            }
            return true;
        }

        /** After data moved or a shutdown: half-closes the socket, ends the connection or credits the guest. */
        private void progress(Conn c) {
            if (!c.alive) {
                return;
            }
            if (c.guestNoSend && c.buffered == 0 && !c.hostWriteShut) {
                c.hostWriteShut = true;
                try {
                    Libc.shutdown(c.fd, Libc.SHUT_WR);
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, name + ": half-closing " + c + " failed", e);
                    reset(c);
                    return;
                }
            }
            if (c.guestNoSend && c.guestNoRecv) {
                if (c.buffered == 0) {
                    reset(c); // the guest closed: Linux waits for this RST
                } else if (c.deadline == 0) {
                    c.deadline = System.nanoTime() + closeNanos;
                    timed.add(c);
                }
                return;
            }
            // a hang-up once nothing is left to read: the host peer closed both ways (a SHUT_WR alone
            // is end of stream without one)
            boolean peerGone = c.hup && (c.hostEof || c.guestNoRecv);
            if (c.state == State.ESTABLISHED && (c.hostEof && c.hostWriteShut || peerGone)) {
                c.state = State.CLOSING;
                c.shutdownFlags = SHUTDOWN_RCV | SHUTDOWN_SEND;
                queueControl(c, P_SHUTDOWN);
                c.deadline = System.nanoTime() + closeNanos;
                timed.add(c);
            }
            if (Integer.toUnsignedLong(c.fwdCnt - c.lastFwdCntSent) >= BUF_ALLOC / 2) {
                queueControl(c, P_CREDIT);
            }
        }

        // ---- the sockets

        private boolean canRead(Conn c) {
            return c.alive && c.state == State.ESTABLISHED && !c.hostEof && !c.guestNoRecv && c.credit() > 0;
        }

        private void updateInterest(Conn c) {
            if (!c.alive) {
                return;
            }
            int want = (canRead(c) && !rxStarved ? Epoll.EPOLLIN : 0) | (c.buffered > 0 ? Epoll.EPOLLOUT : 0);
            // a hung-up socket is always ready: watched only while something is asked of it
            boolean reg = want != 0 || !c.hup;
            if (want == c.interest && reg == c.registered) {
                return;
            }
            try {
                if (!reg) {
                    epoll.remove(c.fd);
                } else if (!c.registered) {
                    epoll.add(c.fd, want, c.key);
                } else {
                    epoll.modify(c.fd, want, c.key);
                }
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, name + ": watching " + c + " failed", e);
                reset(c);
                return;
            }
            c.registered = reg;
            c.interest = want;
        }

        private void pollSockets() {
            int n = epoll.wait(0);
            for (int i = 0; i < n; i++) {
                Conn c = conns.get(epoll.token(i));
                int events = epoll.events(i);
                if (c == null || !c.alive) {
                    continue;
                }
                try {
                    if ((events & (Epoll.EPOLLHUP | Epoll.EPOLLERR)) != 0 && !c.hup) {
                        c.hup = true;
                        progress(c);
                    }
                    if (c.buffered > 0 && (events & (Epoll.EPOLLOUT | Epoll.EPOLLERR | Epoll.EPOLLHUP)) != 0) {
                        if (!flush(c)) {
                            reset(c);
                            continue;
                        }
                        progress(c);
                    }
                    if (c.alive && (c.interest & Epoll.EPOLLIN) != 0
                            && (events & (Epoll.EPOLLIN | Epoll.EPOLLERR | Epoll.EPOLLHUP)) != 0 && !c.inReadable) {
                        c.inReadable = true;
                        readable.add(c);
                    }
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, name + ": " + c + " failed", e);
                    reset(c);
                }
                updateInterest(c);
            }
        }

        // ---- rx: packets to the guest

        private void serveRx() throws VirtqueueException {
            for (int n = 0; n < RX_BUDGET; n++) {
                if (!sendControl()) {
                    return;
                }
                Conn c = readable.poll();
                if (c == null) {
                    return;
                }
                c.inReadable = false;
                if (!canRead(c)) {
                    updateInterest(c);
                    continue;
                }
                DescriptorChain chain = rxChain();
                while (chain != null && chain.writableLength() == SIZE) {
                    rxq.addUsed(memory, chain.head(), 0); // room for a header only: no use for data
                    usedRx = true;
                    chain = rxChain();
                }
                if (chain == null) {
                    c.inReadable = true;
                    readable.addFirst(c);
                    starve();
                    return;
                }
                long r;
                try {
                    r = readInto(c, chain);
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, name + ": reading " + c + " failed", e);
                    r = -Errno.ECONNRESET;
                }
                if (r > 0) {
                    c.txCnt += (int) r;
                    c.inReadable = true;
                    readable.add(c);
                } else {
                    spare = chain;
                    if (r == 0) {
                        c.hostEof = true;
                        c.shutdownFlags |= SHUTDOWN_SEND;
                        queueControl(c, P_SHUTDOWN);
                        progress(c);
                    } else if (r != -Errno.EAGAIN) {
                        reset(c);
                    }
                }
                updateInterest(c);
            }
            if (!readable.isEmpty()) {
                more = true;
            }
        }

        /** Sends pending control packets; false if the rx ring ran out first. */
        private boolean sendControl() throws VirtqueueException {
            while (!replies.isEmpty() || !control.isEmpty()) {
                DescriptorChain chain = rxChain();
                if (chain == null) {
                    starve();
                    return false;
                }
                Reply r = replies.poll();
                if (r != null) {
                    writeHeader(chain, r.fromCid(), r.local(), r.peer(), OP_RST, 0, 0, 0);
                    continue;
                }
                Conn c = control.peek();
                if (!c.alive || c.pending == 0) {
                    control.poll();
                    c.inControl = false;
                    spare = chain;
                    continue;
                }
                int bit = Integer.lowestOneBit(c.pending);
                c.pending &= ~bit;
                int op = switch (bit) {
                    case P_REQUEST -> OP_REQUEST;
                    case P_RESPONSE -> OP_RESPONSE;
                    case P_SHUTDOWN -> OP_SHUTDOWN;
                    default -> OP_CREDIT_UPDATE;
                };
                writeHeader(chain, HOST_CID, c.local, c.peer, op, bit == P_SHUTDOWN ? c.shutdownFlags : 0, c.fwdCnt, 0);
                c.lastFwdCntSent = c.fwdCnt;
                if (c.pending == 0) {
                    control.poll();
                    c.inControl = false;
                }
            }
            return true;
        }

        /** An rx chain that can hold a header, or null if the driver posted none. */
        private DescriptorChain rxChain() throws VirtqueueException {
            if (spare != null) {
                DescriptorChain c = spare;
                spare = null;
                return c;
            }
            for (int i = 0; i <= QUEUE_SIZE; i++) {
                Optional<DescriptorChain> next = next(rxq, RX);
                if (next.isEmpty()) {
                    return null;
                }
                DescriptorChain c = next.get();
                if (!c.readable().isEmpty() || c.writableLength() < SIZE) {
                    rxq.addUsed(memory, c.head(), 0); // the driver drops a used buffer shorter than a header
                    usedRx = true;
                    continue;
                }
                return c;
            }
            return null;
        }

        /**
         * The rx chain kept for later goes back to the ring at the end of each round: a pause comes
         * between two rounds, and must find no chain taken (a snapshot would lose it). It was the
         * last one popped: {@link #rxChain} hands it out before it pops again.
         */
        private void giveBackSpare() {
            if (spare != null) {
                rxq.undoPop(memory, spare);
                spare = null;
            }
        }

        /** No rx buffers: stop watching sockets for input until the driver posts some. */
        private void starve() {
            if (rxStarved) {
                return;
            }
            rxStarved = true;
            for (Conn c : new ArrayList<>(conns.values())) {
                updateInterest(c);
            }
        }

        /** Receives from the socket into the chain after its header: bytes, 0 at end of stream, or -errno. */
        private long readInto(Conn c, DescriptorChain chain) {
            long max = Math.min(Math.min(c.credit(), MAX_PACKET), chain.writableLength() - SIZE);
            long skip = SIZE;
            long total = 0;
            long last = 0;
            for (Descriptor d : chain.writable()) {
                if (total >= max) {
                    break;
                }
                long dl = Integer.toUnsignedLong(d.length());
                if (skip >= dl) {
                    skip -= dl;
                    continue;
                }
                long n = Math.min(dl - skip, max - total);
                long r = Libc.recv(c.fd, memory.slice(d.address() + skip, n), n, Libc.MSG_DONTWAIT);
                skip = 0;
                if (r <= 0) {
                    last = r;
                    break;
                }
                total += r;
                if (r < n) {
                    break;
                }
            }
            if (total == 0) {
                return last;
            }
            writeHeader(chain, HOST_CID, c.local, c.peer, OP_RW, 0, c.fwdCnt, (int) total);
            c.lastFwdCntSent = c.fwdCnt;
            return total;
        }

        /** Writes a packet header into the chain's first bytes and returns the chain as used. */
        private void writeHeader(DescriptorChain chain, long fromCid, int local, int peer, int op, int flags, int fwdCnt,
                int len) {
            VsockHeader.write(out, fromCid, guestCid, local, peer, len, TYPE_STREAM, op, flags, BUF_ALLOC, fwdCnt);
            scatter(out, chain.writable());
            rxq.addUsed(memory, chain.head(), SIZE + len);
            usedRx = true;
        }

        private void queueControl(Conn c, int bit) {
            c.pending |= bit;
            if (!c.inControl) {
                c.inControl = true;
                control.add(c);
            }
        }

        /** A RST for the tx packet being served, which has no connection: from where it was sent to. */
        private void reply(int local, int peer) {
            reply(VsockHeader.dstCid(in), local, peer);
        }

        private void reply(long fromCid, int local, int peer) {
            if (replies.size() < MAX_REPLIES) {
                replies.add(new Reply(fromCid, local, peer));
            } else {
                LOG.log(Level.DEBUG, () -> name + ": too many RSTs waiting for rx buffers; one dropped");
            }
        }

        // ---- ending connections

        /** Drops the connection and tells the guest with a RST. */
        private void reset(Conn c) {
            if (!c.alive) {
                return;
            }
            drop(c, "reset");
            reply(HOST_CID, c.local, c.peer);
        }

        /** Closes the socket and forgets the connection; a host-initiated one not yet accepted is refused. */
        private void drop(Conn c, String why) {
            if (!c.alive) {
                return;
            }
            c.alive = false;
            conns.remove(c.key);
            live = conns.size();
            timed.remove(c);
            if (c.hostInitiated) {
                hostPorts.remove(c.local);
            }
            if (c.registered && epoll.fd().isOpen()) {
                try {
                    epoll.remove(c.fd);
                } catch (RuntimeException e) {
                    LOG.log(Level.DEBUG, () -> name + ": " + c + " was not in the set: " + e.getMessage());
                }
            }
            c.registered = false;
            c.interest = 0;
            c.fd.close();
            if (c.bufArena != null) {
                c.bufArena.close();
                c.bufArena = null;
                c.buf = null;
            }
            ConnectCallback cb = c.callback;
            c.callback = null;
            if (cb != null) {
                try {
                    cb.refused(why);
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, name + ": a connect callback threw", e);
                }
            }
        }

        private void dropAll(String why) {
            for (Conn c : new ArrayList<>(conns.values())) {
                drop(c, why);
            }
            control.clear();
            readable.clear();
            replies.clear();
            timed.clear();
        }

        /** Gives up connections past their deadline; returns the milliseconds to the next one, or -1. */
        private int timeouts() {
            if (timed.isEmpty()) {
                return -1;
            }
            long now = System.nanoTime();
            long next = Long.MAX_VALUE;
            for (Conn c : new ArrayList<>(timed)) {
                long left = c.deadline - now;
                if (left <= 0) {
                    if (c.state == State.CONNECTING) {
                        drop(c, "the guest did not answer within " + connectNanos / 1_000_000 + " ms");
                        reply(HOST_CID, c.local, c.peer);
                    } else {
                        reset(c);
                    }
                    more = true;
                } else {
                    next = Math.min(next, left);
                }
            }
            if (more) {
                return 0;
            }
            return next == Long.MAX_VALUE ? -1 : (int) Math.min(Integer.MAX_VALUE, next / 1_000_000 + 1);
        }

        // ---- the event queue

        private void postEvent() throws VirtqueueException {
            while (eventPending) {
                Optional<DescriptorChain> next = next(evq, EVENT);
                if (next.isEmpty()) {
                    return;
                }
                DescriptorChain c = next.get();
                if (!c.readable().isEmpty() || c.writableLength() < VsockHeader.EVENT_SIZE) {
                    evq.addUsed(memory, c.head(), 0);
                    usedEvent = true;
                    continue;
                }
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment e = a.allocate(VsockHeader.EVENT_SIZE);
                    VsockHeader.writeEvent(e, VsockHeader.EVENT_TRANSPORT_RESET);
                    scatter(e, c.writable());
                }
                evq.addUsed(memory, c.head(), VsockHeader.EVENT_SIZE);
                usedEvent = true;
                eventPending = false;
            }
        }

        /**
         * The next chain of queue {@code index}, returning chains the ring holds invalid as used; empty
         * once the ring is empty with notifications enabled, or (with {@link #more} set) after a ring's
         * worth of invalid chains.
         */
        private Optional<DescriptorChain> next(Virtqueue q, int index) throws VirtqueueException {
            for (int i = 0; i <= QUEUE_SIZE; i++) {
                try {
                    Optional<DescriptorChain> c = q.pop(memory);
                    if (c.isPresent() || !q.setNotificationsEnabled(memory, true)) {
                        return c;
                    }
                } catch (VirtqueueException.InvalidChain e) {
                    q.addUsed(memory, e.head(), 0);
                    used(index);
                }
            }
            more = true;
            return Optional.empty();
        }

        private void used(int index) {
            switch (index) {
                case RX -> usedRx = true;
                case TX -> usedTx = true;
                default -> usedEvent = true;
            }
        }

        // ---- copies between scratch and chains

        /** The first {@code to.byteSize()} bytes of the buffers into {@code to}. */
        private void gather(List<Descriptor> buffers, MemorySegment to) {
            long at = 0;
            for (Descriptor d : buffers) {
                if (at == to.byteSize()) {
                    return;
                }
                long n = Math.min(Integer.toUnsignedLong(d.length()), to.byteSize() - at);
                MemorySegment.copy(memory.slice(d.address(), n), 0, to, at, n);
                at += n;
            }
        }

        /** {@code from} into the first bytes of the buffers (which hold at least as many). */
        private void scatter(MemorySegment from, List<Descriptor> buffers) {
            long at = 0;
            for (Descriptor d : buffers) {
                if (at == from.byteSize()) {
                    return;
                }
                long n = Math.min(Integer.toUnsignedLong(d.length()), from.byteSize() - at);
                MemorySegment.copy(from, at, memory.slice(d.address(), n), 0, n);
                at += n;
            }
        }
    }
}
