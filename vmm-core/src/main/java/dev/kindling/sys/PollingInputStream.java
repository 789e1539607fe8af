package dev.kindling.sys;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Objects;

/**
 * An {@link InputStream} over a descriptor it borrows (standard input, a pipe, a socket) whose
 * {@link #close()}, from any thread, ends a read in progress at once: a read waits in poll(2) on the
 * descriptor and on an eventfd that close() signals, and reads the descriptor only once poll says it
 * has data. Nothing is read after close(), so what arrives later stays in the descriptor for its next
 * reader. The descriptor itself is left open.
 */
public final class PollingInputStream extends InputStream {
    private static final int CHUNK = 4096;

    private final Fd fd;
    private final EventFd wakeup = EventFd.nonBlocking();
    /** Native buffer for read(2); freed by the GC, so close() never frees memory a read is using. */
    private final MemorySegment buffer = Arena.ofAuto().allocate(CHUNK);
    private final Object readLock = new Object();
    private final Object stateLock = new Object();
    private boolean closed;
    private boolean reading;

    /** Reads {@code fd}, which stays the caller's: close() does not close it. */
    public PollingInputStream(Fd fd) {
        this.fd = Objects.requireNonNull(fd, "fd");
    }

    /** Standard input (descriptor 0). */
    public static PollingInputStream stdin() {
        return new PollingInputStream(Fd.borrow(0, "standard input"));
    }

    @Override
    public int read() throws IOException {
        byte[] one = new byte[1];
        int n = read(one, 0, 1);
        return n < 0 ? -1 : one[0] & 0xff;
    }

    /** Waits for data, end of input or {@link #close()}; returns -1 for the last two. */
    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        Objects.checkFromIndexSize(off, len, b.length);
        if (len == 0) {
            return 0;
        }
        synchronized (readLock) {
            synchronized (stateLock) {
                if (closed) {
                    return -1;
                }
                reading = true;
            }
            try {
                return readOnce(b, off, len);
            } finally {
                synchronized (stateLock) {
                    reading = false;
                    if (closed) {
                        wakeup.close(); // close() left it to the reader it had to wake
                    }
                }
            }
        }
    }

    private int readOnce(byte[] b, int off, int len) throws IOException {
        List<Fd> fds = List.of(wakeup.fd(), fd);
        while (true) {
            int ready = Poller.waitAny(fds, -1); // signals do not end the wait
            if (isClosed() || ready == 0) {
                return -1;
            }
            long n;
            try {
                n = Libc.read(fd, buffer, Math.min(len, CHUNK));
            } catch (SyscallException e) {
                throw new IOException(fd.what() + ": " + e.getMessage(), e);
            }
            if (n == -Errno.EAGAIN) {
                continue; // a non-blocking descriptor another reader emptied first
            }
            if (n == 0) {
                return -1;
            }
            MemorySegment.copy(buffer, 0, MemorySegment.ofArray(b), off, n);
            return (int) n;
        }
    }

    private boolean isClosed() {
        synchronized (stateLock) {
            return closed;
        }
    }

    /** Ends a read in progress (it returns -1) and every later one. Does not close the descriptor. */
    @Override
    public void close() {
        synchronized (stateLock) {
            if (closed) {
                return;
            }
            closed = true;
            wakeup.signal();
            if (!reading) {
                wakeup.close();
            }
        }
    }
}
