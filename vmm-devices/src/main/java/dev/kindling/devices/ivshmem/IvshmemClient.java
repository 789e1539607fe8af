package dev.kindling.devices.ivshmem;

import dev.kindling.device.Threads;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.Poller;
import dev.kindling.sys.UnixSocket;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A peer of an ivshmem server (docs/specs/ivshmem-spec.txt, QEMU's contrib/ivshmem-client): reads
 * the handshake (version 0, own id, -1 with the shared memory fd, other peers' eventfds, own
 * eventfds), then follows joins and leaves on a daemon thread. Also a host-side peer:
 * {@link #notify} rings another peer, {@link #onInterrupt} runs handlers for its own vectors.
 *
 * <p>{@link #connect} returns once the memory and at least one own eventfd have arrived and the
 * socket then stays quiet for {@link #QUIET_MILLIS} (QEMU's server sends the own eventfds last and
 * all at once, so the handshake is complete then; an own eventfd arriving later is still taken).
 */
public final class IvshmemClient implements IvshmemPeers, AutoCloseable {
    private static final System.Logger LOG = System.getLogger(IvshmemClient.class.getName());
    private static final Duration JOIN = Duration.ofSeconds(10);
    /** How long the socket must be quiet after the own eventfds for the handshake to count as done. */
    public static final int QUIET_MILLIS = 50;
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(10);

    private final Path path;
    private final Fd socket;
    private final Fd memory;
    private final long memorySize;
    private final int ownId;
    private final Object lock = new Object();
    private final List<EventFd> own = new ArrayList<>(); // guarded by lock
    private final Map<Integer, List<EventFd>> peers = new TreeMap<>(); // guarded by lock
    private final List<Listener> listeners = new CopyOnWriteArrayList<>();
    private final EventFd wake = EventFd.create();
    private final Thread reader;
    private final Map<Integer, List<Runnable>> handlers = new TreeMap<>(); // guarded by lock
    private Thread interrupts; // guarded by lock
    private volatile boolean closing;

    private IvshmemClient(Path path, Fd socket, Fd memory, int ownId, List<EventFd> own, Map<Integer, List<EventFd>> peers) {
        this.path = path;
        this.socket = socket;
        this.memory = memory;
        this.memorySize = Libc.fileSize(memory);
        this.ownId = ownId;
        this.own.addAll(own);
        this.peers.putAll(peers);
        this.reader = new Thread(this::read, "ivshmem-client " + ownId + " " + path);
        reader.setDaemon(true);
    }

    public static IvshmemClient connect(Path socket) {
        return connect(socket, DEFAULT_TIMEOUT);
    }

    /** Connects and reads the handshake within {@code timeout}; an {@link IvshmemProtocolException} names what went wrong. */
    public static IvshmemClient connect(Path path, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        Fd socket = UnixSocket.connect(path);
        List<AutoCloseable> received = new ArrayList<>();
        received.add(socket);
        try {
            long version = expect(socket, deadline, path, "the protocol version", false, received).value;
            if (version != IvshmemServer.PROTOCOL_VERSION) {
                throw new IvshmemProtocolException("ivshmem server " + path + " speaks protocol version " + version
                        + ", not " + IvshmemServer.PROTOCOL_VERSION);
            }
            long id = expect(socket, deadline, path, "the own peer id", false, received).value;
            if (id < 0 || id > IvshmemServer.MAX_PEER_ID) {
                throw new IvshmemProtocolException("ivshmem server " + path + " gave peer id " + id + ", not 0-65535");
            }
            Message shm = expect(socket, deadline, path, "the shared memory", true, received);
            if (shm.value != -1) {
                throw new IvshmemProtocolException("ivshmem server " + path + " sent " + shm.value
                        + " with the shared memory fd, not -1");
            }
            List<EventFd> own = new ArrayList<>();
            Map<Integer, List<EventFd>> peers = new TreeMap<>();
            for (int guard = 0; guard < 1 << 20; guard++) {
                int wait = own.isEmpty() ? remaining(deadline) : Math.min(QUIET_MILLIS, remaining(deadline));
                if (!Poller.waitReadable(socket, wait)) {
                    if (!own.isEmpty()) {
                        break;
                    }
                    throw new IvshmemProtocolException("ivshmem server " + path + " sent no own eventfds within " + timeout);
                }
                Message m = receive(socket, path, received);
                if (m.fd == null && !own.isEmpty() && m.value >= 0) {
                    // past the handshake (the own eventfds come last): a peer left meanwhile
                    List<EventFd> gone = peers.remove((int) m.value);
                    if (gone != null) {
                        gone.forEach(EventFd::close);
                    }
                    continue;
                }
                if (m.fd == null) {
                    throw new IvshmemProtocolException("ivshmem server " + path + " sent " + m.value
                            + " without a descriptor during the handshake");
                }
                checkPeer(m.value, path);
                EventFd e = EventFd.adopt(m.fd);
                if (m.value == id) {
                    own.add(e);
                } else {
                    peers.computeIfAbsent((int) m.value, k -> new ArrayList<>()).add(e);
                }
            }
            IvshmemClient client = new IvshmemClient(path, socket, shm.fd, (int) id, own, peers);
            client.reader.start();
            return client;
        } catch (RuntimeException | Error e) {
            for (AutoCloseable c : received) {
                try {
                    c.close();
                } catch (Exception suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    private record Message(long value, Fd fd) {}

    private static int remaining(long deadline) {
        return (int) Math.max(0, Math.min(Integer.MAX_VALUE, (deadline - System.nanoTime()) / 1_000_000));
    }

    private static void checkPeer(long id, Path path) {
        if (id < 0 || id > IvshmemServer.MAX_PEER_ID) {
            throw new IvshmemProtocolException("ivshmem server " + path + " sent a descriptor for peer " + id
                    + ", not 0-65535");
        }
    }

    private static Message expect(Fd socket, long deadline, Path path, String what, boolean withFd, List<AutoCloseable> received) {
        if (!Poller.waitReadable(socket, remaining(deadline))) {
            throw new IvshmemProtocolException("ivshmem server " + path + " sent no " + what + " in time");
        }
        Message m = receive(socket, path, received);
        if (withFd && m.fd == null) {
            throw new IvshmemProtocolException("ivshmem server " + path + " sent " + what + " without a descriptor");
        }
        if (!withFd && m.fd != null) {
            throw new IvshmemProtocolException("ivshmem server " + path + " sent a descriptor with " + what);
        }
        return m;
    }

    /** One message: 8 bytes, at most one descriptor (every descriptor received is in {@code received} first). */
    private static Message receive(Fd socket, Path path, List<AutoCloseable> received) {
        UnixSocket.Received r;
        try {
            r = UnixSocket.receive(socket, 8, 4);
        } catch (IllegalStateException e) {
            throw new IvshmemProtocolException("ivshmem server " + path + " sent too many descriptors in one message", e);
        }
        received.addAll(r.fds());
        if (r.data().length == 0) {
            throw new IvshmemProtocolException("ivshmem server " + path + " closed the connection");
        }
        if (r.data().length != 8) {
            throw new IvshmemProtocolException("ivshmem server " + path + " sent a message of " + r.data().length
                    + " bytes, not 8");
        }
        if (r.fds().size() > 1) {
            throw new IvshmemProtocolException("ivshmem server " + path + " sent " + r.fds().size()
                    + " descriptors in one message, not at most 1");
        }
        long value = ByteBuffer.wrap(r.data()).order(ByteOrder.LITTLE_ENDIAN).getLong();
        if (value < -1) {
            throw new IvshmemProtocolException("ivshmem server " + path + " sent " + value + ", not a peer id or -1");
        }
        return new Message(value, r.fds().isEmpty() ? null : r.fds().get(0));
    }

    private void read() {
        try {
            for (;;) {
                List<AutoCloseable> got = new ArrayList<>();
                Message m;
                try {
                    m = receive(socket, path, got);
                    if (m.fd != null) {
                        checkPeer(m.value, path);
                    }
                } catch (RuntimeException e) {
                    for (AutoCloseable c : got) {
                        if (c instanceof Fd f) {
                            f.close();
                        }
                    }
                    throw e;
                }
                int id = (int) m.value;
                if (m.value == -1) {
                    if (m.fd != null) {
                        m.fd.close();
                    }
                    LOG.log(Level.WARNING, "ivshmem server {0} sent -1 after the handshake; ignored", path);
                } else if (m.fd != null) {
                    EventFd e = EventFd.adopt(m.fd);
                    if (id == ownId) {
                        synchronized (lock) {
                            own.add(e);
                        }
                        wake.signal();
                    } else {
                        int vector;
                        synchronized (lock) {
                            List<EventFd> l = peers.computeIfAbsent(id, k -> new ArrayList<>());
                            l.add(e);
                            vector = l.size() - 1;
                            for (Listener listener : listeners) {
                                listener.eventFdAdded(id, vector, e);
                            }
                        }
                    }
                } else {
                    List<EventFd> gone;
                    synchronized (lock) {
                        gone = peers.remove(id);
                        if (gone != null) {
                            for (Listener listener : listeners) {
                                listener.peerLeft(id);
                            }
                        }
                    }
                    if (gone != null) {
                        gone.forEach(EventFd::close);
                    }
                }
            }
        } catch (RuntimeException e) {
            if (!closing) {
                LOG.log(Level.WARNING, "ivshmem client " + ownId + " stops following " + path + ": " + e.getMessage());
            }
        }
    }

    @Override
    public int ownId() {
        return ownId;
    }

    @Override
    public List<EventFd> ownEventFds() {
        synchronized (lock) {
            return List.copyOf(own);
        }
    }

    /** The number of own vectors (own eventfds). */
    public int vectors() {
        synchronized (lock) {
            return own.size();
        }
    }

    /** The shared memory (this object's: map it, do not close it). */
    public Fd memoryFd() {
        return memory;
    }

    public long memorySize() {
        return memorySize;
    }

    /** Maps the shared memory for the host program, a peer like the others; close it before or after this client. */
    public IvshmemMemory map() {
        return IvshmemMemory.adopt(memory.dup(), memorySize);
    }

    /** The other peers known now, by id, with their vector counts. */
    public Map<Integer, Integer> peers() {
        synchronized (lock) {
            Map<Integer, Integer> m = new TreeMap<>();
            peers.forEach((k, v) -> m.put(k, v.size()));
            return m;
        }
    }

    @Override
    public AutoCloseable watch(Listener listener) {
        synchronized (lock) {
            peers.forEach((id, fds) -> {
                for (int v = 0; v < fds.size(); v++) {
                    listener.eventFdAdded(id, v, fds.get(v));
                }
            });
            listeners.add(listener);
        }
        return () -> listeners.remove(listener);
    }

    /** Rings vector {@code vector} of peer {@code peer}; an unknown one is an {@link IllegalArgumentException}. */
    public void notify(int peer, int vector) {
        synchronized (lock) {
            List<EventFd> fds = peers.get(peer);
            if (fds == null) {
                throw new IllegalArgumentException("ivshmem peer " + peer + " is not known to peer " + ownId
                        + " (known: " + peers.keySet() + ")");
            }
            if (vector < 0 || vector >= fds.size()) {
                throw new IllegalArgumentException("ivshmem peer " + peer + " has vectors 0-" + (fds.size() - 1)
                        + ", not " + vector);
            }
            fds.get(vector).signal();
        }
    }

    /**
     * Runs {@code handler} on an interrupt thread (one for all vectors) each time own vector
     * {@code vector} is signalled (signals coming together may run it once). Closing the result removes it.
     */
    public AutoCloseable onInterrupt(int vector, Runnable handler) {
        synchronized (lock) {
            if (vector < 0 || vector >= own.size()) {
                throw new IllegalArgumentException("ivshmem peer " + ownId + " has vectors 0-" + (own.size() - 1)
                        + ", not " + vector);
            }
            handlers.computeIfAbsent(vector, k -> new CopyOnWriteArrayList<>()).add(handler);
            if (interrupts == null) {
                interrupts = new Thread(this::serveInterrupts, "ivshmem-interrupts " + ownId);
                interrupts.setDaemon(true);
                interrupts.start();
            }
        }
        return () -> {
            synchronized (lock) {
                List<Runnable> l = handlers.get(vector);
                if (l != null) {
                    l.remove(handler);
                }
            }
        };
    }

    private void serveInterrupts() {
        try {
            while (!closing) {
                List<Fd> fds = new ArrayList<>();
                fds.add(wake.fd());
                List<EventFd> vectors = ownEventFds();
                vectors.forEach(e -> fds.add(e.fd()));
                int i = Poller.waitAny(fds, -1);
                if (closing) {
                    return;
                }
                if (i == 0) {
                    wake.read();
                } else if (i > 0) {
                    vectors.get(i - 1).read();
                    List<Runnable> l;
                    synchronized (lock) {
                        l = handlers.get(i - 1);
                    }
                    if (l != null) {
                        for (Runnable r : l) {
                            try {
                                r.run();
                            } catch (RuntimeException e) {
                                LOG.log(Level.WARNING, "ivshmem interrupt handler for vector " + (i - 1) + " failed", e);
                            }
                        }
                    }
                }
            }
        } catch (RuntimeException e) {
            if (!closing) {
                LOG.log(Level.WARNING, "ivshmem interrupt thread of peer " + ownId + " stopped", e);
            }
        }
    }

    /** Stops both threads and closes the socket, the memory fd and every eventfd. */
    @Override
    public void close() {
        if (closing) {
            return;
        }
        closing = true;
        Libc.shutdown(socket, Libc.SHUT_RDWR);
        wake.signal();
        Thread t;
        synchronized (lock) {
            t = interrupts;
        }
        Threads.join(reader, JOIN);
        if (t != null) {
            Threads.join(t, JOIN);
        }
        socket.close();
        memory.close();
        synchronized (lock) {
            own.forEach(EventFd::close);
            own.clear();
            peers.values().forEach(l -> l.forEach(EventFd::close));
            peers.clear();
        }
        wake.close();
    }
}
