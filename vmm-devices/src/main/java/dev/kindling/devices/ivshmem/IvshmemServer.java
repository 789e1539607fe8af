package dev.kindling.devices.ivshmem;

import dev.kindling.device.Threads;
import dev.kindling.sys.Epoll;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.UnixSocket;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * An ivshmem server as QEMU's contrib/ivshmem-server (docs/specs/ivshmem-spec.txt): listens on a Unix
 * socket, gives each client the lowest free id and {@code vectors} eventfds, and sends it, as
 * little-endian int64 messages with at most one descriptor each: the protocol version 0, its id, -1
 * with the shared memory fd, every other peer's id with each of that peer's eventfds, then its own id
 * with each of its own eventfds. Every other client then learns the new peer's id with each of its
 * eventfds; a client leaving is announced to the rest as its id without a descriptor. One daemon
 * thread serves everything; client sockets are non-blocking, and a client whose socket is full (it
 * stopped reading) is dropped rather than waited for.
 */
public final class IvshmemServer implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(IvshmemServer.class.getName());
    /** docs/specs/ivshmem-spec.txt: the only protocol version there is. */
    public static final long PROTOCOL_VERSION = 0;
    /** The highest peer id (the doorbell register holds it in 16 bits). */
    public static final int MAX_PEER_ID = 0xffff;
    private static final long TOKEN_LISTEN = -1, TOKEN_WAKE = -2;

    /** A client as {@link #peers()} shows it. */
    public record Peer(int id, int vectors) {}

    private record Client(int id, Fd socket, List<EventFd> eventFds) {}

    private final Path path;
    private final Fd memory;
    private final int vectors;
    private final Fd listening;
    private final EventFd wake;
    private final Epoll epoll;
    private final Thread thread;
    private final Map<Integer, Client> clients = new TreeMap<>(); // guarded by this
    private volatile boolean closed; // set under this

    private IvshmemServer(Path path, Fd memory, int vectors, Fd listening, EventFd wake, Epoll epoll) {
        this.path = path;
        this.memory = memory;
        this.vectors = vectors;
        this.listening = listening;
        this.wake = wake;
        this.epoll = epoll;
        this.thread = new Thread(this::run, "ivshmem-server " + path);
        thread.setDaemon(true);
    }

    /**
     * A server on {@code socket} sharing a new memfd of {@code size} bytes (a power of two, at least
     * 4096) with {@code vectors} (1-1024) eventfds per client.
     */
    public static IvshmemServer start(Path socket, long size, int vectors) {
        if (size < 4096 || Long.bitCount(size) != 1) {
            throw new IllegalArgumentException("ivshmem memory size must be a power of two of at least 4096, not " + size);
        }
        checkVectors(vectors);
        Fd memory = Fd.adopt(Libc.memfdCreate("ivshmem", Libc.MFD_CLOEXEC), "ivshmem memfd");
        try {
            Libc.ftruncate(memory, size);
            return start(socket, memory, vectors);
        } finally {
            memory.close(); // start keeps its own duplicate
        }
    }

    /**
     * A server on {@code socket} sharing {@code memory} (duplicated: the caller keeps its descriptor)
     * with {@code vectors} (1-1024) eventfds per client.
     */
    public static IvshmemServer start(Path socket, Fd memory, int vectors) {
        checkVectors(vectors);
        List<AutoCloseable> made = new ArrayList<>();
        try {
            Fd mem = memory.dup();
            made.add(mem);
            Fd listening = UnixSocket.listen(socket, 16);
            made.add(listening);
            made.add(() -> Files.deleteIfExists(socket));
            EventFd wake = EventFd.create();
            made.add(wake);
            Epoll epoll = Epoll.create(16);
            made.add(epoll);
            epoll.add(listening, Epoll.EPOLLIN, TOKEN_LISTEN);
            epoll.add(wake.fd(), Epoll.EPOLLIN, TOKEN_WAKE);
            IvshmemServer server = new IvshmemServer(socket, mem, vectors, listening, wake, epoll);
            server.thread.start();
            return server;
        } catch (RuntimeException | Error e) {
            for (int i = made.size() - 1; i >= 0; i--) {
                try {
                    made.get(i).close();
                } catch (Exception suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    private static void checkVectors(int vectors) {
        if (vectors < 1 || vectors > 1024) {
            throw new IllegalArgumentException("ivshmem vectors must be 1-1024, not " + vectors);
        }
    }

    public Path path() {
        return path;
    }

    public int vectors() {
        return vectors;
    }

    /** The clients connected now, by id. */
    public synchronized List<Peer> peers() {
        return clients.values().stream().map(c -> new Peer(c.id, c.eventFds.size())).toList();
    }

    private void run() {
        try {
            while (!closed) {
                int n = epoll.wait(-1);
                for (int i = 0; i < n && !closed; i++) {
                    long token = epoll.token(i);
                    if (token == TOKEN_LISTEN) {
                        acceptOne();
                    } else if (token >= 0) {
                        serviceClient((int) token);
                    }
                }
            }
        } catch (RuntimeException | Error e) {
            if (!closed) {
                LOG.log(Level.ERROR, "ivshmem server on " + path + " stopped", e);
            }
        }
    }

    private void acceptOne() {
        Fd socket = UnixSocket.accept(listening);
        Client client;
        synchronized (this) {
            int id = 0;
            while (clients.containsKey(id)) {
                id++;
            }
            if (id > MAX_PEER_ID) {
                LOG.log(Level.WARNING, "ivshmem server on {0}: no free peer id, connection refused", path);
                socket.close();
                return;
            }
            List<EventFd> fds = new ArrayList<>();
            try {
                Libc.setNonBlocking(socket, true);
                for (int v = 0; v < vectors; v++) {
                    fds.add(EventFd.create());
                }
            } catch (RuntimeException | Error e) {
                fds.forEach(EventFd::close);
                socket.close();
                throw e;
            }
            client = new Client(id, socket, List.copyOf(fds));
            clients.put(id, client);
        }
        Deque<Client> dropped = new ArrayDeque<>();
        boolean ok = send(client, PROTOCOL_VERSION, null) && send(client, client.id, null) && send(client, -1, memory);
        synchronized (this) {
            for (Client other : clients.values()) {
                if (other != client) {
                    for (EventFd e : other.eventFds) {
                        ok = ok && send(client, other.id, e.fd());
                    }
                }
            }
        }
        if (ok) {
            epoll.add(socket, Epoll.EPOLLIN | Epoll.EPOLLRDHUP, client.id);
            List<Client> others;
            synchronized (this) {
                others = new ArrayList<>(clients.values());
            }
            for (Client other : others) {
                if (other != client) {
                    for (EventFd e : client.eventFds) {
                        if (!send(other, client.id, e.fd())) {
                            dropped.add(other);
                            break;
                        }
                    }
                }
            }
            for (EventFd e : client.eventFds) {
                ok = ok && send(client, client.id, e.fd());
            }
        }
        if (!ok) {
            dropped.add(client);
        }
        drop(dropped);
    }

    private void serviceClient(int id) {
        Client client;
        synchronized (this) {
            client = clients.get(id);
        }
        if (client == null) {
            return;
        }
        // A client sends nothing in this protocol: data is ignored, end of stream or an error is its leave.
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(256);
            long r = Libc.recv(client.socket, buf, buf.byteSize(), Libc.MSG_DONTWAIT);
            if (r > 0 || r == -dev.kindling.sys.Errno.EAGAIN) {
                return;
            }
        } catch (RuntimeException e) {
            LOG.log(Level.DEBUG, "ivshmem client {0}: {1}", id, e.getMessage());
        }
        Deque<Client> leaving = new ArrayDeque<>();
        leaving.add(client);
        drop(leaving);
    }

    /** Removes each client of {@code leaving}, announces it to the rest (dropping those that cannot take it too), frees it. */
    private void drop(Deque<Client> leaving) {
        for (int guard = 0; !leaving.isEmpty() && guard <= MAX_PEER_ID + 1; guard++) {
            Client gone = leaving.poll();
            List<Client> rest;
            synchronized (this) {
                if (clients.get(gone.id) != gone) {
                    continue;
                }
                clients.remove(gone.id);
                rest = new ArrayList<>(clients.values());
            }
            free(gone);
            for (Client other : rest) {
                if (!send(other, gone.id, null) && !leaving.contains(other)) {
                    leaving.add(other);
                }
            }
        }
    }

    private void free(Client c) {
        try {
            epoll.remove(c.socket);
        } catch (RuntimeException notAdded) {
            // it failed its handshake before it was watched
        }
        c.socket.close();
        c.eventFds.forEach(EventFd::close);
    }

    /** One message; false (the client is to be dropped) if its socket is full or gone. */
    private boolean send(Client to, long value, Fd fd) {
        byte[] data = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(value).array();
        try {
            long n = UnixSocket.send(to.socket, data, fd == null ? List.of() : List.of(fd));
            if (n == 8) {
                return true;
            }
            LOG.log(Level.WARNING, "ivshmem client {0} took {1} of 8 bytes; dropped", to.id, n);
        } catch (RuntimeException e) {
            // Most often it hung up before the server saw it go (EPIPE): a client's ordinary end.
            LOG.log(Level.DEBUG, "ivshmem client {0} cannot take a message ({1}); dropped", to.id, e.getMessage());
        }
        return false;
    }

    /** Stops the thread, closes the listening socket (deleting its path), every client and the memory. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        wake.signal();
        if (!Threads.join(thread, Duration.ofSeconds(10))) {
            LOG.log(Level.WARNING, "ivshmem server thread on {0} did not stop; closing anyway", path);
        }
        List<Client> all;
        synchronized (this) {
            all = new ArrayList<>(clients.values());
            clients.clear();
        }
        for (Client c : all) {
            c.socket.close();
            c.eventFds.forEach(EventFd::close);
        }
        listening.close();
        try {
            Files.deleteIfExists(path);
        } catch (IOException e) {
            LOG.log(Level.WARNING, "cannot delete ivshmem socket " + path, e);
        }
        epoll.close();
        wake.close();
        memory.close();
    }
}
