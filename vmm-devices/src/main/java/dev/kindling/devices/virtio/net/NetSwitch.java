package dev.kindling.devices.virtio.net;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import dev.kindling.sys.EventFd;
import dev.kindling.sys.Fd;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An in-process Ethernet switch: the VMs of one JVM whose interfaces are ports of it reach each other
 * with no host set-up. It learns which port each source MAC is behind and floods broadcast,
 * multicast and unknown destinations; each port queues a bounded number of frames and drops beyond
 * that, as a switch does. The address table is bounded too, so that a guest sending from ever new
 * MACs cannot grow it: at most {@link #LEARNED_PER_PORT} addresses behind one port and
 * {@link #LEARNED_MAX} in all; an address beyond that is not learned and frames to it are flooded.
 * A MAC seen on another port moves there (or, if that port is full, is forgotten: flooded).
 *
 * <p>A port's {@link NetBackend#send} returns true once the switch took the frame, even if a full
 * egress queue then dropped it (as a real switch's port would: the sender's NIC never learns of it;
 * {@link Port#dropped()} counts such drops at the receiving port). It returns false only for a frame
 * no switch forwards: shorter than an Ethernet header, longer than {@link #MAX_FRAME}, or sent on a
 * closed port. Ports carry no vnet header.
 */
public final class NetSwitch implements AutoCloseable {
    /** Frames a port queues for its guest before it drops. */
    public static final int QUEUE_FRAMES = 256;
    /** Bytes a port queues for its guest before it drops. */
    public static final long QUEUE_BYTES = 1 << 20;
    /** The largest frame forwarded: {@link VirtioNet#MAX_FRAME}. */
    public static final int MAX_FRAME = VirtioNet.MAX_FRAME;
    /** Addresses the switch learns in all. */
    public static final int LEARNED_MAX = 1024;
    /** Addresses the switch learns behind one port. */
    public static final int LEARNED_PER_PORT = 256;
    private static final int ETHER_HEADER = 14;

    private final String name;
    private final List<Port> ports = new CopyOnWriteArrayList<>();
    /** Source MAC (48 bits) to the port it was last seen on; with each port's count, guarded by itself. */
    private final Map<Long, Port> learned = new HashMap<>();
    private final Object lifecycle = new Object();
    private final AtomicInteger portNumbers = new AtomicInteger();
    private boolean closed;

    public NetSwitch(String name) {
        this.name = Objects.requireNonNull(name, "name");
    }

    public String name() {
        return name;
    }

    /** A new port: the backend of one interface. Closing it leaves the switch and frees its descriptor. */
    public NetBackend connect() {
        synchronized (lifecycle) {
            if (closed) {
                throw new IllegalStateException("switch " + name + " is closed");
            }
            Port port = new Port(portNumbers.getAndIncrement());
            ports.add(port);
            return port;
        }
    }

    /** The ports connected now. */
    public int portCount() {
        return ports.size();
    }

    /**
     * Disconnects every port: their guests get no more frames and their sends are refused. Each
     * port's descriptor stays open (its device may still watch it, quietly) until the port itself
     * is closed by its owner.
     */
    @Override
    public void close() {
        synchronized (lifecycle) {
            closed = true;
        }
        for (Port p : ports) {
            p.disconnect();
        }
    }

    @Override
    public String toString() {
        return "NetSwitch[" + name + ", " + ports.size() + " ports]";
    }

    /** The addresses learned now. */
    int learnedCount() {
        synchronized (learned) {
            return learned.size();
        }
    }

    private void forward(Port from, byte[] frame) {
        Port to = null;
        synchronized (learned) {
            if ((frame[6] & 1) == 0) {
                learn(mac(frame, 6), from);
            }
            if ((frame[0] & 1) == 0) {
                to = learned.get(mac(frame, 0));
            }
        }
        if (to != null && to.isOpen()) {
            if (to != from) {
                to.enqueue(frame);
            }
            return;
        }
        for (Port p : ports) {
            if (p != from) {
                p.enqueue(frame);
            }
        }
    }

    /** Records that {@code src} is behind {@code port}, within the table's bounds. Holds the table's lock. */
    private void learn(long src, Port port) {
        Port was = learned.get(src);
        if (was == port) {
            return;
        }
        if (was != null) {
            learned.remove(src);
            was.addresses--;
        }
        if (port.addresses < LEARNED_PER_PORT && learned.size() < LEARNED_MAX) {
            learned.put(src, port);
            port.addresses++;
        }
    }

    private static long mac(byte[] frame, int offset) {
        long v = 0;
        for (int i = 0; i < 6; i++) {
            v = v << 8 | (frame[offset + i] & 0xFF);
        }
        return v;
    }

    private void leave(Port port) {
        ports.remove(port);
        synchronized (learned) {
            learned.values().removeIf(p -> p == port);
            port.addresses = 0;
        }
    }

    /** One port of the switch: frames for its guest wait in a bounded queue. */
    public final class Port implements NetBackend {
        private final int index;
        private final EventFd signal = EventFd.nonBlocking();
        private final ArrayDeque<byte[]> queue = new ArrayDeque<>();
        private final AtomicLong dropped = new AtomicLong();
        private long queuedBytes;
        private boolean open = true;
        /** Addresses learned behind this port; guarded by the switch's table. */
        private int addresses;

        private Port(int index) {
            this.index = index;
        }

        /** Readable while frames wait for the guest. */
        @Override
        public Fd readable() {
            return signal.fd();
        }

        @Override
        public boolean vnetHeader() {
            return false;
        }

        @Override
        public int receive(MemorySegment into) {
            while (true) {
                byte[] frame;
                synchronized (this) {
                    if (!open) {
                        return 0;
                    }
                    frame = queue.poll();
                    if (frame == null) {
                        return 0;
                    }
                    queuedBytes -= frame.length;
                    if (queue.isEmpty()) {
                        signal.read();
                    }
                }
                if (frame.length <= into.byteSize()) {
                    MemorySegment.copy(frame, 0, into, JAVA_BYTE, 0, frame.length);
                    return frame.length;
                }
                dropped.incrementAndGet();
            }
        }

        @Override
        public boolean send(MemorySegment frame) {
            long length = frame.byteSize();
            if (length < ETHER_HEADER || length > MAX_FRAME || !isOpen()) {
                return false;
            }
            forward(this, frame.toArray(JAVA_BYTE));
            return true;
        }

        /** Frames dropped at this port: its queue was full, or the guest's buffer too small. */
        public long dropped() {
            return dropped.get();
        }

        /** Frames waiting for the guest. */
        public synchronized int queued() {
            return queue.size();
        }

        synchronized boolean isOpen() {
            return open;
        }

        private void enqueue(byte[] frame) {
            synchronized (this) {
                if (!open) {
                    return;
                }
                if (queue.size() < QUEUE_FRAMES && queuedBytes + frame.length <= QUEUE_BYTES) {
                    if (queue.isEmpty()) {
                        signal.signal();
                    }
                    queue.add(frame);
                    queuedBytes += frame.length;
                    return;
                }
            }
            dropped.incrementAndGet();
        }

        /** Leaves the switch: no more frames either way; the descriptor stays open and quiet. */
        private void disconnect() {
            synchronized (this) {
                if (!open) {
                    return;
                }
                open = false;
                if (!queue.isEmpty()) {
                    signal.read();
                }
                queue.clear();
                queuedBytes = 0;
            }
            leave(this);
        }

        /** Leaves the switch, if it has not closed already, and frees the descriptor. */
        @Override
        public void close() {
            disconnect();
            synchronized (this) {
                if (signal.fd().isOpen()) {
                    signal.close();
                }
            }
        }

        @Override
        public String toString() {
            return "NetSwitch.Port[" + name + "#" + index + "]";
        }
    }
}
