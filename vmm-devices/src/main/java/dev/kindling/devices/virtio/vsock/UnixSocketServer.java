package dev.kindling.devices.virtio.vsock;

import dev.kindling.sys.Epoll;
import dev.kindling.sys.Errno;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.SyscallException;
import dev.kindling.sys.UnixSocket;
import java.io.IOException;
import java.lang.System.Logger;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;

/**
 * Firecracker's host side of vsock on a Unix socket: accepts clients on the path, reads each one's
 * {@code CONNECT <port>\n} (bounded in length and time) on a thread of its own, then hands the client
 * socket to the device, which answers {@code OK <host_port>\n} before it relays. Guest-initiated
 * connections reach {@code <path>_<port>}.
 */
final class UnixSocketServer implements AutoCloseable {
    private static final Logger LOG = System.getLogger(UnixSocketServer.class.getName());
    /** How long a client has to send its CONNECT line. */
    static final Duration HANDSHAKE_TIMEOUT = Duration.ofSeconds(3);
    /** Clients whose line is not in yet; more are closed at once. */
    static final int MAX_HANDSHAKES = 256;
    private static final int LISTEN_BACKLOG = 128;
    private static final long LISTENING = 0, STOP = 1;
    private static final int LINE_BUFFER = ConnectLine.MAX_LENGTH + 1;
    /** How long the listening socket is not watched after accept ran out of descriptors (it stays readable). */
    static final Duration ACCEPT_PAUSE = Duration.ofMillis(100);
    /** At most one warning about failing accepts per this long. */
    private static final long WARN_EVERY_NANOS = Duration.ofSeconds(10).toNanos();

    /** accept4 on the listening socket: a new client's fd, or a {@link SyscallException}. */
    @FunctionalInterface
    interface Acceptor {
        int accept(Fd listening);
    }

    private final String name;
    private final Path path;
    private final VirtioVsock device;
    private final long handshakeNanos;
    private final Fd listening;
    private final EventFd stop;
    private final Epoll epoll;
    private final Map<Long, Client> clients = new HashMap<>();
    private final MemorySegment buffer = Arena.ofAuto().allocate(LINE_BUFFER);
    private final Thread thread;
    private final Acceptor acceptor;
    private long nextToken = 2;
    /** When accepting starts again (System.nanoTime) after running out of descriptors; 0: accepting. */
    private long pausedUntil;
    private long lastWarning;
    private int unwarned;
    private boolean closed;

    /** A client whose CONNECT line is being read. */
    private static final class Client {
        final Fd fd;
        final long deadline;
        final byte[] line = new byte[LINE_BUFFER];
        int length;

        Client(Fd fd, long deadline) {
            this.fd = fd;
            this.deadline = deadline;
        }
    }

    /** Listens on {@code path} (which must not exist) and starts accepting. */
    UnixSocketServer(String name, Path path, VirtioVsock device, Duration handshakeTimeout) throws IOException {
        this(name, path, device, handshakeTimeout, l -> Libc.accept4(l, Libc.O_NONBLOCK));
    }

    UnixSocketServer(String name, Path path, VirtioVsock device, Duration handshakeTimeout, Acceptor acceptor)
            throws IOException {
        this.name = name;
        this.acceptor = acceptor;
        this.path = path;
        this.device = device;
        this.handshakeNanos = handshakeTimeout.toNanos();
        if (Files.exists(path, LinkOption.NOFOLLOW_LINKS)) {
            throw new IOException("vsock uds_path " + path + " already exists");
        }
        Fd l = null;
        EventFd s = null;
        Epoll e = null;
        try {
            l = UnixSocket.listen(path, LISTEN_BACKLOG);
            Libc.setNonBlocking(l, true);
            s = EventFd.nonBlocking();
            e = Epoll.create(64);
            e.add(l, Epoll.EPOLLIN, LISTENING);
            e.add(s.fd(), Epoll.EPOLLIN, STOP);
        } catch (RuntimeException ex) {
            closeAll(e, s, l);
            if (l != null) {
                Files.deleteIfExists(path);
            }
            throw new IOException("cannot listen on vsock uds_path " + path + ": " + ex.getMessage(), ex);
        }
        this.listening = l;
        this.stop = s;
        this.epoll = e;
        this.thread = Thread.ofPlatform().daemon().name(name + "-uds").unstarted(this::run);
        thread.start();
    }

    Path path() {
        return path;
    }

    /**
     * The socket of a server listening on {@code <path>_<port>}, connected without waiting, or null
     * (nobody there, or its backlog is full): the guest gets a RST.
     */
    Fd connectToHost(int port) {
        Path target = Path.of(path + "_" + Integer.toUnsignedString(port));
        try {
            return UnixSocket.connectNonBlocking(target);
        } catch (SyscallException | IllegalArgumentException e) {
            LOG.log(Level.DEBUG, () -> name + ": guest connection to host port " + Integer.toUnsignedString(port)
                    + " refused: " + e.getMessage());
            return null;
        }
    }

    private void run() {
        try {
            while (true) {
                int n = epoll.wait(waitMillis());
                if (pausedUntil != 0 && System.nanoTime() - pausedUntil >= 0) {
                    pausedUntil = 0;
                    epoll.modify(listening, Epoll.EPOLLIN, LISTENING);
                }
                for (int i = 0; i < n; i++) {
                    long token = epoll.token(i);
                    if (token == STOP) {
                        return;
                    } else if (token == LISTENING) {
                        acceptAll();
                    } else {
                        Client c = clients.get(token);
                        if (c != null) {
                            try {
                                readLine(token, c);
                            } catch (RuntimeException e) {
                                // one client's socket failing in a way a client cannot cause alone
                                LOG.log(Level.WARNING, name + ": reading a vsock client's CONNECT line failed", e);
                                drop(token, c, "failed: " + e.getMessage());
                            }
                        }
                    }
                }
                expire();
            }
        } catch (RuntimeException | Error e) {
            // nobody accepts any more: clients get ECONNREFUSED rather than wait in the backlog
            stopListening();
            try {
                LOG.log(Level.ERROR, name + ": vsock Unix socket server on " + path + " stopped", e);
            } catch (RuntimeException | Error ignored) {
                // the logger failing too (out of descriptors): the socket is closed all the same
            }
        }
    }

    private void stopListening() {
        try {
            listening.close();
            Files.deleteIfExists(path);
        } catch (IOException | RuntimeException ignored) {
            // best effort on the way out; close() tries the path again
        }
    }

    private int waitMillis() {
        if (clients.isEmpty() && pausedUntil == 0) {
            return -1;
        }
        long first = pausedUntil == 0 ? Long.MAX_VALUE : pausedUntil;
        for (Client c : clients.values()) {
            first = Math.min(first, c.deadline);
        }
        return (int) Math.clamp((first - System.nanoTime() + 999_999) / 1_000_000, 1, 1000);
    }

    private void acceptAll() {
        for (int i = 0; i < LISTEN_BACKLOG; i++) {
            Fd client;
            try {
                client = Fd.adopt(acceptor.accept(listening), "vsock client on " + path);
            } catch (SyscallException e) {
                if (e.errno() == Errno.EMFILE || e.errno() == Errno.ENFILE) {
                    // the client stays in the backlog and the socket readable: look again a little later
                    pausedUntil = System.nanoTime() + ACCEPT_PAUSE.toNanos();
                    epoll.modify(listening, 0, LISTENING);
                }
                if (e.errno() != Errno.EAGAIN) {
                    warnAcceptFailed(e);
                }
                return;
            }
            if (clients.size() >= MAX_HANDSHAKES) {
                LOG.log(Level.WARNING, name + ": " + MAX_HANDSHAKES + " vsock clients still handshaking; closing a new one");
                client.close();
                continue;
            }
            long token = nextToken++;
            try {
                epoll.add(client, Epoll.EPOLLIN, token);
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, name + ": cannot watch a vsock client on " + path, e);
                client.close();
                continue;
            }
            clients.put(token, new Client(client, System.nanoTime() + handshakeNanos));
        }
    }

    private void warnAcceptFailed(SyscallException e) {
        long now = System.nanoTime();
        if (lastWarning != 0 && now - lastWarning < WARN_EVERY_NANOS) {
            unwarned++;
            return;
        }
        int more = unwarned;
        lastWarning = now;
        unwarned = 0;
        LOG.log(Level.WARNING, name + ": accept on " + path + " failed"
                + (more > 0 ? " (and " + more + " times more since the last warning)" : ""), e);
    }

    /** Takes what the client sent, up to and including the newline, never beyond: the rest is the stream's. */
    private void readLine(long token, Client c) {
        int want = LINE_BUFFER - c.length;
        long peeked = Libc.recv(c.fd, buffer, want, Libc.MSG_PEEK | Libc.MSG_DONTWAIT);
        if (peeked == -Errno.EAGAIN) {
            return;
        }
        if (peeked <= 0) {
            drop(token, c, "closed before the end of its CONNECT line");
            return;
        }
        int newline = -1;
        for (int i = 0; i < peeked; i++) {
            if (buffer.get(ValueLayout.JAVA_BYTE, i) == '\n') {
                newline = i;
                break;
            }
        }
        int take = newline >= 0 ? newline + 1 : (int) peeked;
        long got = Libc.recv(c.fd, buffer, take, Libc.MSG_DONTWAIT);
        if (got != take) {
            drop(token, c, "failed while sending its CONNECT line");
            return;
        }
        MemorySegment.copy(buffer, ValueLayout.JAVA_BYTE, 0, c.line, c.length, take);
        c.length += take;
        if (newline < 0) {
            if (c.length >= LINE_BUFFER) {
                drop(token, c, "sent more than " + ConnectLine.MAX_LENGTH + " bytes without a newline");
            }
            return;
        }
        OptionalLong port = ConnectLine.parse(c.line, c.length - 1);
        if (port.isEmpty()) {
            drop(token, c, "sent a malformed CONNECT line");
            return;
        }
        epoll.remove(c.fd);
        clients.remove(token);
        handOver(c.fd, (int) port.getAsLong());
    }

    private void handOver(Fd client, int port) {
        try {
            device.connect(port, client, new VirtioVsock.ConnectCallback() {
                @Override
                public void connected(int hostPort) {
                    answer(client, hostPort);
                }

                @Override
                public void refused(String why) {
                    LOG.log(Level.DEBUG, () -> name + ": CONNECT " + Integer.toUnsignedString(port) + " refused: " + why);
                }
            });
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, name + ": CONNECT " + Integer.toUnsignedString(port) + " failed", e);
            client.close();
        }
    }

    /** {@code OK <host_port>\n}, on the device thread before it relays: a fresh socket has room for it. */
    private void answer(Fd client, int hostPort) {
        byte[] ok = ("OK " + Integer.toUnsignedString(hostPort) + "\n").getBytes(StandardCharsets.US_ASCII);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment b = arena.allocateFrom(ValueLayout.JAVA_BYTE, ok);
            long n = Libc.send(client, b, ok.length, Libc.MSG_DONTWAIT);
            if (n != ok.length) {
                // the relay sees the client gone; a short answer cannot happen on a fresh socket
                LOG.log(Level.DEBUG, () -> name + ": vsock client gone before its OK (" + n + ")");
            }
        } catch (RuntimeException e) {
            LOG.log(Level.DEBUG, () -> name + ": vsock client gone before its OK: " + e.getMessage());
        }
    }

    private void expire() {
        long now = System.nanoTime();
        List<Long> late = new ArrayList<>();
        clients.forEach((token, c) -> {
            if (now - c.deadline >= 0) {
                late.add(token);
            }
        });
        for (long token : late) {
            drop(token, clients.get(token), "sent no CONNECT line within " + Duration.ofNanos(handshakeNanos).toMillis() + " ms");
        }
    }

    private void drop(long token, Client c, String why) {
        LOG.log(Level.DEBUG, () -> name + ": closing a vsock client on " + path + ": it " + why);
        clients.remove(token);
        try {
            epoll.remove(c.fd);
        } finally {
            c.fd.close();
        }
    }

    /** Stops the thread, closes the clients still handshaking and the socket, and removes the path. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        stop.signal();
        try {
            thread.join(Duration.ofSeconds(10));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (thread.isAlive()) {
            LOG.log(Level.ERROR, name + ": vsock Unix socket thread did not stop; leaving its descriptors open");
            return;
        }
        clients.values().forEach(c -> c.fd.close());
        clients.clear();
        closeAll(epoll, stop, listening);
        try {
            Files.deleteIfExists(path);
        } catch (IOException e) {
            LOG.log(Level.WARNING, name + ": cannot remove " + path, e);
        }
    }

    private static void closeAll(AutoCloseable... all) {
        for (AutoCloseable a : all) {
            if (a != null) {
                try {
                    a.close();
                } catch (Exception e) {
                    LOG.log(Level.WARNING, "closing " + a + " failed", e);
                }
            }
        }
    }
}
