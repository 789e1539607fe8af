package dev.kindling.sandbox;

import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.util.ArrayDeque;

/**
 * A command's stdout or stderr for {@link ExecHandle}: the session's reader puts the agent's bytes in,
 * the user reads them out. Holds at most {@link #LIMIT} bytes: past that the reader waits, so the agent
 * stops sending and the command stops on a full pipe, as with a local process.
 */
final class OutputPipe extends InputStream implements Run.Sink {
    static final int LIMIT = 1 << 20;

    private final ArrayDeque<byte[]> chunks = new ArrayDeque<>();
    private int offset;
    private long held;
    private boolean ended;
    private boolean closed;
    private IOException failure;

    /** Adds bytes; waits while the pipe is full. Dropped once the user closed the stream. */
    @Override
    public synchronized void put(byte[] b) throws InterruptedException {
        while (held >= LIMIT && !closed) {
            wait();
        }
        if (!closed) {
            chunks.add(b);
            held += b.length;
            notifyAll();
        }
    }

    /** No more bytes: readers get end of file after what is held. */
    @Override
    public synchronized void end() {
        ended = true;
        notifyAll();
    }

    /** The stream broke: readers get {@code e} after what is held. */
    @Override
    public synchronized void fail(IOException e) {
        if (!ended) {
            failure = e;
            ended = true;
        }
        notifyAll();
    }

    @Override
    public synchronized int read() throws IOException {
        byte[] one = new byte[1];
        int n = read(one, 0, 1);
        return n < 0 ? -1 : one[0] & 0xFF;
    }

    @Override
    public synchronized int read(byte[] b, int off, int len) throws IOException {
        java.util.Objects.checkFromIndexSize(off, len, b.length);
        if (len == 0) {
            return 0;
        }
        while (chunks.isEmpty()) {
            if (closed) {
                throw new IOException("stream closed");
            }
            if (ended) {
                if (failure != null) {
                    throw new IOException(failure.getMessage(), failure);
                }
                return -1;
            }
            try {
                wait();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while reading the command's output");
            }
        }
        byte[] head = chunks.peek();
        int n = Math.min(len, head.length - offset);
        System.arraycopy(head, offset, b, off, n);
        offset += n;
        held -= n;
        if (offset == head.length) {
            chunks.poll();
            offset = 0;
        }
        notifyAll();
        return n;
    }

    @Override
    public synchronized int available() {
        return (int) Math.min(Integer.MAX_VALUE, held);
    }

    /** Drops what is held and what comes later. */
    @Override
    public synchronized void close() {
        closed = true;
        chunks.clear();
        held = 0;
        notifyAll();
    }
}
