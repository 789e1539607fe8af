package dev.kindling.sandbox;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/**
 * One agent session on its own connection: frames out (any thread, one frame at a time) and in (one
 * reader). Closing it ends the connection, which wakes its reader and writers, and makes the agent
 * kill a command the session still runs.
 */
final class Session implements AutoCloseable {
    private static final int BUFFER = 64 << 10;

    private final Link link;
    private final InputStream in;
    private final OutputStream out;
    private volatile boolean closed;

    Session(Link link) {
        this.link = link;
        this.in = new BufferedInputStream(link.input(), BUFFER);
        this.out = new BufferedOutputStream(link.output(), BUFFER);
    }

    void send(int type, byte[] body) throws IOException {
        send(type, body, 0, body.length);
    }

    synchronized void send(int type, byte[] body, int off, int len) throws IOException {
        Frames.write(out, type, body, off, len);
        out.flush();
    }

    /** The next frame; end of stream is an {@link java.io.EOFException}. */
    Frames.Frame read() throws IOException {
        Frames.Frame f = Frames.read(in);
        if (f == null) {
            throw new java.io.EOFException("the agent closed the connection");
        }
        return f;
    }

    /** Reads the next frame, which must be {@code type}; an ERROR becomes an {@link AgentError}. */
    Frames.Frame expect(int type) throws IOException {
        Frames.Frame f = read();
        if (f.type() == type) {
            return f;
        }
        throw unexpected(f, Frames.name(type));
    }

    /** The exception for a frame that is not one of {@code wanted}: the agent's ERROR, or a protocol error. */
    static IOException unexpected(Frames.Frame f, String wanted) throws IOException {
        if (f.type() == Frames.ERROR) {
            Frames.Body b = f.reader();
            int errno = b.i32("errno");
            String message = b.string("message");
            return new AgentError(errno, message);
        }
        return new Frames.ProtocolException("the agent sent " + f + " where " + wanted + " was due");
    }

    /** The version handshake. */
    void hello() throws IOException {
        send(Frames.HELLO, Frames.body().u32(Frames.VERSION).build());
        Frames.Body b = expect(Frames.HELLO).reader();
        long version = b.u32("version");
        if (version != Frames.VERSION) {
            throw new Frames.ProtocolException("the agent speaks protocol version " + version + ", not " + Frames.VERSION);
        }
    }

    boolean isClosed() {
        return closed;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            link.close();
        }
    }

    /** The agent's ERROR frame: an errno and its message. */
    static final class AgentError extends IOException {
        final int errno;
        final String agentMessage;

        AgentError(int errno, String message) {
            super("the agent refused: " + message + " (errno " + errno + ")");
            this.errno = errno;
            this.agentMessage = message;
        }
    }
}
