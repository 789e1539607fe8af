package dev.kindling.devices.virtio.vsock;

import dev.kindling.sys.Errno;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.Poller;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.ClosedChannelException;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongConsumer;

/**
 * A connected stream socket used with blocking reads and writes from any threads, and closed from
 * any thread: close shuts the socket down (which wakes blocked calls) and closes the descriptor only
 * once the last call using it has left, so a recycled descriptor number is never read or written.
 * Blocked calls look at the thread's interrupt status every {@link #INTERRUPT_CHECK_MILLIS}.
 */
final class BlockingSocket implements AutoCloseable {
    static final int INTERRUPT_CHECK_MILLIS = 50;
    static final int BUFFER_SIZE = 64 * 1024;

    private final Fd fd;
    private final Object lock = new Object();
    private int inFlight;
    private boolean closed;
    private boolean outputShut;
    private final ReentrantLock readLock = new ReentrantLock();
    private final ReentrantLock writeLock = new ReentrantLock();
    private MemorySegment readBuffer;
    private MemorySegment writeBuffer;
    /** A struct pollfd each for the reader and the writer, which may wait at the same time. */
    private final MemorySegment readPoll;
    private final MemorySegment writePoll;
    private static final VarHandle POLL_FD = Poller.POLLFD.varHandle(PathElement.groupElement("fd"));
    private static final VarHandle POLL_EVENTS = Poller.POLLFD.varHandle(PathElement.groupElement("events"));

    BlockingSocket(Fd fd) {
        this.fd = fd;
        Libc.setNonBlocking(fd, true);
        Arena arena = Arena.ofAuto();
        this.readPoll = pollfd(arena, Libc.POLLIN);
        this.writePoll = pollfd(arena, Libc.POLLOUT);
    }

    private MemorySegment pollfd(Arena arena, short event) {
        MemorySegment p = arena.allocate(Poller.POLLFD);
        POLL_FD.set(p, 0L, fd.value());
        POLL_EVENTS.set(p, 0L, event);
        return p;
    }

    boolean isOpen() {
        synchronized (lock) {
            return !closed;
        }
    }

    /**
     * Reads at most {@code max} bytes into a native buffer handed to {@code sink}: bytes read, or -1
     * at end of stream. Blocks until at least one byte is there. A reset (the device dropped the
     * connection with bytes of ours unread) is an IOException: what was written may not have arrived.
     */
    int read(int max, Sink sink) throws IOException {
        readLock.lock();
        try {
            enter();
            try {
                if (readBuffer == null) {
                    readBuffer = Arena.ofAuto().allocate(BUFFER_SIZE);
                }
                while (true) {
                    long n = Libc.recv(fd, readBuffer, Math.min(max, BUFFER_SIZE), Libc.MSG_DONTWAIT);
                    if (n > 0) {
                        sink.take(readBuffer, (int) n);
                        return (int) n;
                    }
                    if (n == 0) {
                        checkNotClosed();
                        return -1;
                    }
                    if (n != -Errno.EAGAIN) {
                        checkNotClosed();
                        throw new IOException(n == -Errno.ECONNRESET ? "connection reset by the guest"
                                : "reading the connection failed (" + Errno.name((int) -n) + ")");
                    }
                    await(readPoll, 0);
                }
            } finally {
                leave();
            }
        } finally {
            readLock.unlock();
        }
    }

    /**
     * Writes all {@code length} bytes that {@code source} copies into a native buffer, a chunk at a
     * time; blocks while the socket is full (the guest's credit is used up). It hears of
     * each part sent ({@code progress}), also when a later part fails.
     */
    void write(long length, Source source, LongConsumer progress) throws IOException {
        writeLock.lock();
        try {
            enter();
            try {
                synchronized (lock) {
                    if (outputShut) {
                        throw new IOException("output of this connection is shut down");
                    }
                }
                if (writeBuffer == null) {
                    writeBuffer = Arena.ofAuto().allocate(BUFFER_SIZE);
                }
                long done = 0;
                while (done < length) {
                    int chunk = (int) Math.min(BUFFER_SIZE, length - done);
                    source.put(writeBuffer, done, chunk);
                    int sent = 0;
                    while (sent < chunk) {
                        long n = Libc.send(fd, writeBuffer.asSlice(sent), chunk - sent, Libc.MSG_DONTWAIT);
                        if (n > 0) {
                            sent += (int) n;
                            progress.accept(n);
                        } else if (n == -Errno.EAGAIN) {
                            await(writePoll, done + sent);
                        } else {
                            checkNotClosed();
                            throw new IOException("the guest closed the connection (" + Errno.name((int) -n) + ")");
                        }
                    }
                    done += chunk;
                }
            } finally {
                leave();
            }
        } finally {
            writeLock.unlock();
        }
    }

    /** Ends the output: the peer reads end of stream. */
    void shutdownOutput() throws IOException {
        enter();
        try {
            synchronized (lock) {
                outputShut = true;
            }
            Libc.shutdown(fd, Libc.SHUT_WR);
        } finally {
            leave();
        }
    }

    private void await(MemorySegment pollfd, long transferred) throws IOException {
        while (true) {
            if (Thread.currentThread().isInterrupted()) {
                InterruptedIOException e = new InterruptedIOException("interrupted while waiting on a vsock connection");
                e.bytesTransferred = (int) Math.min(Integer.MAX_VALUE, transferred);
                throw e;
            }
            checkNotClosed();
            if (Libc.poll(pollfd, 1, INTERRUPT_CHECK_MILLIS) > 0) {
                return;
            }
        }
    }

    private void enter() throws ClosedChannelException {
        synchronized (lock) {
            if (closed) {
                throw new ClosedChannelException();
            }
            inFlight++;
        }
    }

    private void leave() {
        synchronized (lock) {
            if (--inFlight == 0 && closed) {
                fd.close();
            }
        }
    }

    private void checkNotClosed() throws AsynchronousCloseException {
        synchronized (lock) {
            if (closed) {
                throw new AsynchronousCloseException();
            }
        }
    }

    /** Shuts the socket down both ways and closes it once no call uses it. Idempotent. */
    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            if (inFlight == 0) {
                fd.close();
            } else {
                Libc.shutdown(fd, Libc.SHUT_RDWR);
            }
        }
    }

    /** Takes {@code n} bytes read into {@code buffer}. */
    @FunctionalInterface
    interface Sink {
        void take(MemorySegment buffer, int n);
    }

    /** Copies {@code n} bytes, from {@code offset} of what is written, to the start of {@code buffer}. */
    @FunctionalInterface
    interface Source {
        void put(MemorySegment buffer, long offset, int n);
    }
}
