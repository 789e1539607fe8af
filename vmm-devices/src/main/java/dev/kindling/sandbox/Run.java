package dev.kindling.sandbox;

import static java.nio.charset.StandardCharsets.UTF_8;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.time.Duration;
import java.util.OptionalInt;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A command the agent started, on its own session: a reader thread (the pump) moves STDOUT and STDERR
 * into two sinks until EXIT. Serves {@link Sandbox#exec} (sinks that collect) and, as the
 * {@link ExecHandle}, {@link Sandbox#start} (sinks that are the handle's streams).
 */
final class Run implements ExecHandle {
    private static final Duration JOIN = Duration.ofSeconds(10);

    /** Where the pump puts one stream's bytes. */
    interface Sink {
        void put(byte[] b) throws InterruptedException;

        void end();

        void fail(IOException e);
    }

    /** Keeps everything, for {@link ExecResult}. */
    static final class Collector implements Sink {
        private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();

        @Override
        public synchronized void put(byte[] b) {
            bytes.writeBytes(b);
        }

        @Override
        public void end() {}

        @Override
        public void fail(IOException e) {}

        synchronized String text() {
            return bytes.toString(UTF_8);
        }
    }

    private final Agent agent;
    private final Session session;
    private final int pid;
    private final String program;
    private final Sink out;
    private final Sink err;
    private final boolean streamedStdin;
    private final CompletableFuture<Integer> exit = new CompletableFuture<>();
    private final OutputStream stdin = new Stdin();
    private volatile Thread pump;
    /** System.nanoTime() at which the command is killed, or 0. */
    private volatile long deadline;

    Run(Agent agent, Session session, int pid, String program, Sink out, Sink err, boolean streamedStdin) {
        this.streamedStdin = streamedStdin;
        this.agent = agent;
        this.session = session;
        this.pid = pid;
        this.program = program;
        this.out = out;
        this.err = err;
    }

    void startPump() {
        pump = agent.thread("exec-" + pid, this::pump);
    }

    private void pump() {
        try {
            while (true) {
                Frames.Frame f = session.read();
                switch (f.type()) {
                    case Frames.STDOUT -> out.put(f.body());
                    case Frames.STDERR -> err.put(f.body());
                    case Frames.EXIT -> {
                        Frames.Body b = f.reader();
                        long kind = b.u32("kind");
                        long value = b.u32("value");
                        b.end();
                        if (kind > 1) {
                            throw new Frames.ProtocolException("EXIT of unknown kind " + kind);
                        }
                        out.end();
                        err.end();
                        exit.complete((int) (kind == 0 ? value : 128 + value));
                        return;
                    }
                    default -> throw Session.unexpected(f, "STDOUT, STDERR or EXIT");
                }
            }
        } catch (IOException | InterruptedException e) {
            SandboxException x = agent.broken(program + " (pid " + pid + ")", e, session);
            IOException io = new IOException(x.getMessage(), x);
            out.fail(io);
            err.fail(io);
            exit.completeExceptionally(x);
        } finally {
            session.close();
            agent.forget(this);
        }
    }

    /** The exit code, or null when {@code timeout} (null: none) passes first. */
    Integer await(Duration timeout) throws InterruptedException {
        try {
            return timeout == null ? exit.get() : exit.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            return null;
        } catch (ExecutionException e) {
            throw (SandboxException) e.getCause();
        }
    }

    void joinPump() throws InterruptedException {
        Thread t = pump;
        if (t != null && t != Thread.currentThread()) {
            t.join(JOIN);
        }
    }

    /** Writes {@code bytes} to stdin and closes it; a command that exits first just ends the session. */
    void feed(byte[] bytes) {
        try {
            ((Stdin) stdin).send(bytes);
            stdin.close();
        } catch (IOException e) {
            // the command ended, or the session did: the pump reports that
        }
    }

    void deadline(Duration timeout) {
        deadline = System.nanoTime() + timeout.toNanos();
    }

    /** From the watchdog: kills the command once its deadline passed. */
    void checkDeadline(long now) {
        long d = deadline;
        if (d != 0 && now - d > 0) {
            deadline = 0;
            signalQuietly(9);
        }
    }

    void signalQuietly(int signo) {
        try {
            signal(signo);
        } catch (SandboxException e) {
            // the session ended: the pump reports why
        }
    }

    /** From {@link Agent#fail}: ends the session and wakes the pump wherever it waits. */
    void abort() {
        session.close();
        Thread t = pump;
        if (t != null) {
            t.interrupt();
        }
    }

    @Override
    public int pid() {
        return pid;
    }

    @Override
    public OutputStream stdin() {
        return stdin;
    }

    @Override
    public InputStream stdout() {
        return stream(out);
    }

    @Override
    public InputStream stderr() {
        return stream(err);
    }

    private static InputStream stream(Sink s) {
        if (s instanceof OutputPipe p) {
            return p;
        }
        throw new IllegalStateException("this command's output is collected, not streamed");
    }

    @Override
    public OptionalInt waitFor(Duration timeout) throws InterruptedException {
        Integer code = await(timeout);
        return code == null ? OptionalInt.empty() : OptionalInt.of(code);
    }

    @Override
    public void kill() {
        signal(9);
    }

    @Override
    public void signal(int signo) {
        if (signo <= 0 || signo > 64) {
            throw new IllegalArgumentException("no signal " + signo);
        }
        if (exit.isDone()) {
            return;
        }
        try {
            session.send(Frames.SIGNAL, Frames.body().u32(signo).build());
        } catch (IOException e) {
            if (!exit.isDone()) {
                throw agent.broken("signal " + signo + " to " + program, e, session);
            }
        }
    }

    /**
     * Kills the command if it still runs (the agent kills it when its session closes), drops output not
     * read yet and waits for the pump.
     */
    @Override
    public void close() {
        if (!exit.isDone()) {
            signalQuietly(9);
        }
        session.close();
        for (Sink s : new Sink[] {out, err}) {
            if (s instanceof OutputPipe p) {
                p.close();
            }
        }
        try {
            joinPump();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** STDIN frames of at most {@link Agent#CHUNK} bytes; closing sends the empty one (end of file). */
    private final class Stdin extends OutputStream {
        private boolean closed;
        private boolean fed;

        @Override
        public void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            if (!streamedStdin) {
                throw new IOException("stdin of " + program + " is not streamed: start it with Exec.withStreamedStdin()");
            }
            send(b, off, len);
        }

        synchronized void send(byte[] b) throws IOException {
            fed = true;
            send(b, 0, b.length);
        }

        private synchronized void send(byte[] b, int off, int len) throws IOException {
            java.util.Objects.checkFromIndexSize(off, len, b.length);
            if (closed) {
                throw new IOException("stdin of " + program + " is closed");
            }
            for (int at = 0; at < len; at += Agent.CHUNK) {
                session.send(Frames.STDIN, b, off + at, Math.min(Agent.CHUNK, len - at));
            }
        }

        @Override
        public synchronized void close() throws IOException {
            if (!closed && (streamedStdin || fed)) {
                closed = true;
                if (!exit.isDone()) {
                    session.send(Frames.STDIN, new byte[0]);
                }
            }
        }
    }
}
