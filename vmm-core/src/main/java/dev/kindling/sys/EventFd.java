package dev.kindling.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** An eventfd: a counter the kernel (irqfd, ioeventfd) and Java threads signal each other through. */
public final class EventFd implements AutoCloseable {
    private final Fd fd;

    private EventFd(Fd fd) {
        this.fd = fd;
    }

    public static EventFd create() {
        return new EventFd(Fd.adopt(Libc.eventfd(0, 0), "eventfd"));
    }

    public static EventFd nonBlocking() {
        return new EventFd(Fd.adopt(Libc.eventfd(0, Libc.EFD_NONBLOCK), "eventfd"));
    }

    /** Takes ownership of {@code fd}, an eventfd made elsewhere (received over a Unix socket, say). */
    public static EventFd adopt(Fd fd) {
        return new EventFd(fd);
    }

    public Fd fd() {
        return fd;
    }

    /** Adds {@code value} to the counter (wakes a reader, or makes KVM inject an irqfd interrupt). */
    public void signal(long value) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocateFrom(ValueLayout.JAVA_LONG, value);
            Libc.write(fd, buf, 8);
        }
    }

    public void signal() {
        signal(1);
    }

    /**
     * Reads and resets the counter. Blocks on a blocking eventfd while it is zero; returns 0 on a
     * non-blocking one that is zero.
     */
    public long read() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(ValueLayout.JAVA_LONG);
            long n = Libc.read(fd, buf, 8);
            return n == 8 ? buf.get(ValueLayout.JAVA_LONG, 0) : 0;
        }
    }

    /** Waits up to {@code timeoutMillis} for the counter to become non-zero; true if it did. */
    public boolean await(int timeoutMillis) {
        return Poller.waitReadable(fd, timeoutMillis);
    }

    @Override
    public void close() {
        fd.close();
    }
}
