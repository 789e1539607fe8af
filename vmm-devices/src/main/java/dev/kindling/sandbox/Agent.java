package dev.kindling.sandbox;

import static java.nio.charset.StandardCharsets.UTF_8;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The client side of docs/agent-protocol.md over any {@link Link.Connector}: the sessions, the threads
 * that serve them, the heartbeat and the watchdog, and the sandbox's failure. Once {@link #fail} is
 * called (the guest exited, hung or the sandbox was closed) every open session is closed, so pending
 * calls wake, and every call throws a {@link SandboxException} with the reason and the console's tail.
 */
final class Agent {
    private static final System.Logger LOG = System.getLogger(Agent.class.getName());

    /** DATA and STDIN frames carry at most this much. */
    static final int CHUNK = 256 << 10;
    /**
     * A PING is sent every {@code unresponsiveAfter / PINGS_PER_WINDOW}, at least {@link #MIN_PING} apart: each
     * costs the guest kernel a vsock round trip, which adds up where many idle sandboxes run at once.
     */
    static final int PINGS_PER_WINDOW = 5;
    static final Duration MIN_PING = Duration.ofSeconds(1);
    private static final long TICK_MILLIS = 200;
    /** How long a command may take to end after SIGKILL before its session is dropped. */
    static final Duration KILL_GRACE = Duration.ofSeconds(30);
    /** A session that broke without a reason waits this long for the sandbox's failure, to report that instead. */
    private static final Duration FAILURE_GRACE = Duration.ofSeconds(2);
    private static final Duration JOIN = Duration.ofSeconds(10);

    private final String name;
    private final Link.Connector connector;
    private final Map<String, String> env;
    private final Supplier<String> consoleTail;

    private final Set<Session> sessions = ConcurrentHashMap.newKeySet();
    private final Set<Run> runs = ConcurrentHashMap.newKeySet();
    private final Set<Thread> threads = ConcurrentHashMap.newKeySet();
    private final CountDownLatch failed = new CountDownLatch(1);
    private volatile String failure;

    // the watchdog's
    private volatile long bootDeadline;
    private volatile Duration bootTimeout;
    private volatile Session heartbeat;
    private volatile long unresponsiveNanos;
    private volatile long pingEveryNanos;
    private volatile Duration unresponsiveAfter;
    /** System.nanoTime() of the last frame from the agent, or to it, on any session. */
    private volatile long lastHeard = System.nanoTime();
    /** When each PING not yet answered was sent, oldest first. */
    private final ConcurrentLinkedQueue<Long> unanswered = new ConcurrentLinkedQueue<>();

    Agent(String name, Link.Connector connector, Map<String, String> env, Supplier<String> consoleTail) {
        this.name = name;
        this.connector = connector;
        this.env = Map.copyOf(env);
        this.consoleTail = consoleTail;
    }

    // ---- life cycle

    /** Starts the watchdog; until {@link #watch} it fails the sandbox once {@code bootTimeout} passes. */
    void start(Duration bootTimeout) {
        this.bootTimeout = bootTimeout;
        this.bootDeadline = System.nanoTime() + bootTimeout.toNanos();
        thread("watchdog", this::watchdog);
    }

    /** The agent answered: from now on {@code session} is the heartbeat, which must answer within {@code unresponsiveAfter}. */
    void watch(Session session, Duration unresponsiveAfter) {
        this.unresponsiveAfter = unresponsiveAfter;
        this.unresponsiveNanos = unresponsiveAfter.toNanos();
        this.pingEveryNanos = pingEvery(unresponsiveAfter).toNanos();
        this.heartbeat = session;
        bootDeadline = 0;
        thread("heartbeat", () -> {
            try {
                while (true) {
                    session.expect(Frames.PONG);
                    unanswered.poll();
                }
            } catch (IOException e) {
                if (failure == null && !session.isClosed()) {
                    waitForFailure();
                    fail("the agent's heartbeat session ended: " + e.getMessage());
                }
            } finally {
                session.close();
            }
        });
    }

    /** Marks the sandbox failed (the first reason stays) and closes every session. Quick: it may run on a vCPU thread. */
    void fail(String reason) {
        synchronized (this) {
            if (failure != null) {
                return;
            }
            failure = reason;
        }
        failed.countDown();
        LOG.log(Level.DEBUG, "sandbox {0}: {1}", name, reason);
        for (Run r : runs) {
            r.abort();
        }
        for (Session s : sessions) {
            s.close();
        }
    }

    /** The reason the sandbox failed, or null while it works. */
    String failure() {
        return failure;
    }

    boolean awaitFailure(Duration timeout) throws InterruptedException {
        return failed.await(timeout.toNanos(), TimeUnit.NANOSECONDS);
    }

    SandboxException failureException() {
        return new SandboxException(failure, consoleTail.get());
    }

    /** Throws the failure if there is one. */
    void check() {
        if (failure != null) {
            throw failureException();
        }
    }

    /** Waits (bounded) for the threads this agent started; call after {@link #fail}. */
    void join() {
        long deadline = System.nanoTime() + JOIN.toNanos();
        for (Thread t : List.copyOf(threads)) {
            if (t == Thread.currentThread()) {
                continue;
            }
            try {
                t.join(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            if (t.isAlive()) {
                LOG.log(Level.WARNING, "sandbox {0}: thread {1} did not end", name, t.getName());
            }
        }
    }

    Thread thread(String role, Runnable body) {
        Thread t = new Thread(() -> {
            try {
                body.run();
            } finally {
                threads.remove(Thread.currentThread());
            }
        }, "sandbox-" + name + "-" + role);
        t.setDaemon(true);
        threads.add(t);
        t.start();
        return t;
    }

    static Duration pingEvery(Duration unresponsiveAfter) {
        Duration d = unresponsiveAfter.dividedBy(PINGS_PER_WINDOW);
        return d.compareTo(MIN_PING) < 0 ? MIN_PING : d;
    }

    private void watchdog() {
        long nextPing = 0;
        byte[] ping = new byte[8];
        long count = 0;
        try {
            while (failure == null) {
                long now = System.nanoTime();
                long boot = bootDeadline;
                if (boot != 0 && now - boot > 0) {
                    fail("the agent did not answer within " + human(bootTimeout));
                    return;
                }
                Session hb = heartbeat;
                if (hb != null) {
                    // hung: a PING unanswered for that long, and no other session moved a frame meanwhile
                    // (a guest busy with a large transfer may answer late, but it moves the transfer)
                    Long oldest = unanswered.peek();
                    if (oldest != null && now - oldest > unresponsiveNanos && now - lastHeard > unresponsiveNanos) {
                        fail("guest stopped answering for " + human(unresponsiveAfter));
                        return;
                    }
                    if (now - nextPing >= 0) {
                        ByteBuffer.wrap(ping).putLong(++count);
                        unanswered.add(now);
                        try {
                            hb.send(Frames.PING, ping);
                        } catch (IOException e) {
                            // the heartbeat reader sees the broken session and reports it
                        }
                        nextPing = now + pingEveryNanos;
                    }
                }
                for (Run r : runs) {
                    r.checkDeadline(now);
                }
                failed.await(TICK_MILLIS, TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void heard() {
        lastHeard = System.nanoTime();
    }

    static String human(Duration d) {
        long ms = d.toMillis();
        return ms % 1000 == 0 ? ms / 1000 + " s" : ms + " ms";
    }

    private void waitForFailure() {
        try {
            failed.await(FAILURE_GRACE.toNanos(), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * The exception for a session that broke: the sandbox's failure if there is one (or comes within
     * moments: a guest that died breaks its connections about when its exit is reported), else {@code e}.
     */
    SandboxException broken(String what, Throwable e, Session s) {
        if (e instanceof Session.AgentError a) {
            return new SandboxException(what + ": " + a.getMessage(), "", e);
        }
        if (failure == null && !(e instanceof Frames.ProtocolException) && (s == null || !s.isClosed())) {
            waitForFailure();
        }
        if (failure != null) {
            return new SandboxException(failure, consoleTail.get(), e);
        }
        return new SandboxException(what + ": " + e.getMessage(), consoleTail.get(), e);
    }

    // ---- sessions

    /** A new connection, after the handshake. */
    Session open() {
        check();
        Link link;
        try {
            link = connector.connect();
        } catch (IOException e) {
            throw broken("cannot connect to the agent", e, null);
        }
        Session s = new Session(link, this::heard);
        return adopt(s);
    }

    private Session adopt(Session s) {
        sessions.add(s);
        if (failure != null) {
            s.close();
            sessions.remove(s);
            throw failureException();
        }
        try {
            s.hello();
        } catch (IOException e) {
            s.close();
            sessions.remove(s);
            throw broken("the agent's handshake failed", e, s);
        }
        return s;
    }

    /** A session on {@code link} (already connected), after the handshake; closed with the sandbox. */
    Session open(Link link) {
        return adopt(new Session(link, this::heard));
    }

    void closed(Session s) {
        s.close();
        sessions.remove(s);
    }

    /** One PING answered by a PONG with the same bytes, on {@code s}. */
    void ping(Session s) {
        byte[] hello = "boot".getBytes(UTF_8);
        try {
            s.send(Frames.PING, hello);
            Frames.Frame f = s.expect(Frames.PONG);
            if (!java.util.Arrays.equals(f.body(), hello)) {
                throw new Frames.ProtocolException("PONG carried other bytes than the PING");
            }
        } catch (IOException e) {
            throw broken("the agent did not answer a PING", e, s);
        }
    }

    // ---- exec

    private byte[] execBody(Exec e, boolean stdinPipe) {
        Map<String, String> merged = new LinkedHashMap<>(env);
        merged.putAll(e.env());
        List<String> entries = new ArrayList<>();
        merged.forEach((k, v) -> {
            if (k.isEmpty() || k.indexOf('=') >= 0) {
                throw new IllegalArgumentException("environment variable name '" + k + "' is empty or holds '='");
            }
            entries.add(k + "=" + v);
        });
        return Frames.body().u32(stdinPipe ? Frames.EXEC_STDIN_PIPE : 0).string(e.workingDirectory())
                .strings(e.argv()).strings(entries).build();
    }

    /** Sends EXEC, reads STARTED and starts the session's reader. */
    private Run begin(Exec e, Run.Sink out, Run.Sink err) {
        byte[] body = execBody(e, e.streamStdin() || e.stdin() != null);
        Session s = open();
        sessions.remove(s); // the run owns it now, and closes it on failure
        try {
            s.send(Frames.EXEC, body);
            Frames.Frame f = s.read();
            if (f.type() != Frames.STARTED) {
                IOException x = Session.unexpected(f, "STARTED");
                if (x instanceof Session.AgentError a) {
                    throw new SandboxException("cannot run " + e.argv().getFirst() + ": " + a.agentMessage
                            + " (errno " + a.errno + ")", "", a);
                }
                throw x;
            }
            Frames.Body b = f.reader();
            int pid = (int) b.u32("pid");
            b.end();
            Run r = new Run(this, s, pid, e.argv().getFirst(), out, err, e.streamStdin());
            runs.add(r);
            if (failure != null) {
                r.abort();
            }
            r.startPump();
            return r;
        } catch (IOException x) {
            s.close();
            throw broken("exec of " + e.argv().getFirst(), x, s);
        } catch (RuntimeException x) {
            s.close();
            throw x;
        }
    }

    void forget(Run r) {
        runs.remove(r);
    }

    ExecResult exec(Exec e) {
        Run.Collector out = new Run.Collector();
        Run.Collector err = new Run.Collector();
        Run r = begin(e, out, err);
        Thread writer = null;
        try {
            byte[] stdin = e.stdin();
            if (stdin != null) {
                writer = thread("stdin-" + r.pid(), () -> r.feed(stdin));
            }
            boolean timedOut = false;
            int code;
            if (e.timeout().isPresent()) {
                Integer c = r.await(e.timeout().get());
                if (c == null) {
                    timedOut = true;
                    r.signalQuietly(9);
                    c = r.await(KILL_GRACE);
                    if (c == null) {
                        throw new SandboxException(e.argv().getFirst() + " did not end within " + human(KILL_GRACE)
                                + " of SIGKILL", consoleTail.get());
                    }
                }
                code = c;
            } else {
                code = r.await(null);
            }
            r.joinPump();
            return new ExecResult(code, out.text(), err.text(), timedOut);
        } catch (InterruptedException x) {
            Thread.currentThread().interrupt();
            throw new SandboxException("interrupted while " + e.argv().getFirst() + " ran", "", x);
        } finally {
            r.close();
            if (writer != null) {
                try {
                    writer.join(JOIN);
                } catch (InterruptedException x) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    ExecHandle start(Exec e) {
        Run r = begin(e, new OutputPipe(), new OutputPipe());
        e.timeout().ifPresent(r::deadline);
        byte[] stdin = e.stdin();
        if (stdin != null) {
            thread("stdin-" + r.pid(), () -> r.feed(stdin));
        }
        return r;
    }

    // ---- files

    void put(String guestPath, InputStream data, int mode) {
        Objects.requireNonNull(guestPath, "guestPath");
        if ((mode & ~07777) != 0) {
            throw new IllegalArgumentException("mode " + Integer.toOctalString(mode) + " has bits beyond 07777");
        }
        Session s = open();
        try {
            IOException sendFailed = null;
            try {
                s.send(Frames.PUT, Frames.body().u32(mode).string(guestPath).build());
                byte[] buf = new byte[CHUNK];
                while (true) {
                    int n = readHost(data, buf);
                    s.send(Frames.DATA, buf, 0, n);
                    if (n == 0) {
                        break;
                    }
                }
            } catch (IOException e) {
                sendFailed = e; // the agent may have refused and closed: its ERROR may be waiting
            }
            Frames.Frame f;
            try {
                f = s.read();
            } catch (IOException e) {
                if (sendFailed != null) {
                    e.addSuppressed(sendFailed);
                }
                throw broken("put " + guestPath, e, s);
            }
            if (f.type() != Frames.OK) {
                throw fileError(guestPath, f, "OK");
            }
        } finally {
            closed(s);
        }
    }

    private static int readHost(InputStream in, byte[] buf) {
        try {
            return in.readNBytes(buf, 0, buf.length);
        } catch (IOException e) {
            throw new UncheckedIOException("reading the host data to put failed: " + e.getMessage(), e);
        }
    }

    private SandboxException fileError(String path, Frames.Frame f, String wanted) {
        try {
            IOException x = Session.unexpected(f, wanted);
            if (x instanceof Session.AgentError a) {
                return new GuestFileException(path, a.errno, a.agentMessage);
            }
            return broken(path, x, null);
        } catch (IOException x) {
            return broken(path, x, null);
        }
    }

    /** Streams {@code guestPath} into {@code sink}; returns its mode. Host write errors are {@link UncheckedIOException}s. */
    int get(String guestPath, OutputStream sink, long maxSize) {
        Objects.requireNonNull(guestPath, "guestPath");
        Session s = open();
        try {
            s.send(Frames.GET, Frames.body().string(guestPath).build());
            Frames.Frame f = s.read();
            if (f.type() != Frames.FILE) {
                throw fileError(guestPath, f, "FILE");
            }
            Frames.Body b = f.reader();
            long size = b.u64("size");
            int mode = (int) b.u32("mode");
            b.end();
            if (size < 0 || size > maxSize) {
                throw new SandboxException(guestPath + " has " + Long.toUnsignedString(size) + " bytes, over " + maxSize
                        + ": use get(String, Path)", "");
            }
            long got = 0;
            while (true) {
                Frames.Frame d = s.read();
                if (d.type() != Frames.DATA) {
                    throw fileError(guestPath, d, "DATA");
                }
                if (d.body().length == 0) {
                    break;
                }
                got += d.body().length;
                if (got > size) {
                    throw new Frames.ProtocolException("the agent sent more than the " + size + " bytes it announced");
                }
                try {
                    sink.write(d.body());
                } catch (IOException e) {
                    throw new UncheckedIOException("writing the fetched data failed: " + e.getMessage(), e);
                }
            }
            if (got != size) {
                throw new Frames.ProtocolException("the agent announced " + size + " bytes and sent " + got);
            }
            return mode;
        } catch (IOException e) {
            throw broken("get " + guestPath, e, s);
        } finally {
            closed(s);
        }
    }

    byte[] get(String guestPath) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        get(guestPath, out, Integer.MAX_VALUE - 16);
        return out.toByteArray();
    }
}
