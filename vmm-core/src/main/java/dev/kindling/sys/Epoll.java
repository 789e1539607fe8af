package dev.kindling.sys;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;

/**
 * An epoll instance with its event buffer: the loop of a device I/O thread. Each registered
 * descriptor carries a token the caller chooses (a queue index, say), which {@link #wait(int)} hands
 * back with the events that happened. {@link #wait(int)}, {@link #token(int)} and {@link #events(int)}
 * are for one thread at a time and allocate nothing; {@link #add}, {@link #modify} and {@link #remove}
 * may come from any thread, also while another waits (another thread wakes the waiter through an
 * {@link EventFd} added here).
 */
public final class Epoll implements AutoCloseable {
    /** {@code struct epoll_event}: packed on x86-64, so the 64-bit data sits at offset 4. */
    public static final StructLayout EVENT = MemoryLayout.structLayout(
            JAVA_INT.withName("events"), JAVA_LONG_UNALIGNED.withName("data"));
    public static final int EPOLLIN = 0x001, EPOLLOUT = 0x004, EPOLLERR = 0x008, EPOLLHUP = 0x010, EPOLLRDHUP = 0x2000;

    private static final long EVENTS = EVENT.byteOffset(MemoryLayout.PathElement.groupElement("events"));
    private static final long DATA = EVENT.byteOffset(MemoryLayout.PathElement.groupElement("data"));

    private final Fd fd;
    private final Arena arena;
    private final MemorySegment ready;
    private final MemorySegment request;
    private final int capacity;
    private int count;

    private Epoll(Fd fd, Arena arena, int capacity) {
        this.fd = fd;
        this.arena = arena;
        this.capacity = capacity;
        this.ready = arena.allocate(EVENT, capacity);
        this.request = arena.allocate(EVENT);
    }

    /** A new epoll instance that reports up to {@code maxEvents} ready descriptors per wait. */
    public static Epoll create(int maxEvents) {
        if (maxEvents < 1) {
            throw new IllegalArgumentException("an epoll wait needs room for at least one event, not " + maxEvents);
        }
        Fd fd = Fd.adopt(Libc.epollCreate1(0), "epoll");
        Arena arena = Arena.ofShared();
        try {
            return new Epoll(fd, arena, maxEvents);
        } catch (RuntimeException | Error e) {
            arena.close();
            fd.close();
            throw e;
        }
    }

    public Fd fd() {
        return fd;
    }

    /** The most events one {@link #wait(int)} reports. */
    public int capacity() {
        return capacity;
    }

    /** Watches {@code target} for {@code events} (EPOLLIN...; EPOLLHUP and EPOLLERR come unasked), reported with {@code token}. */
    public void add(Fd target, int events, long token) {
        control(Libc.EPOLL_CTL_ADD, target, events, token);
    }

    /** Changes the events watched on {@code target} and its token. */
    public void modify(Fd target, int events, long token) {
        control(Libc.EPOLL_CTL_MOD, target, events, token);
    }

    /** Stops watching {@code target}. */
    public void remove(Fd target) {
        Libc.epollCtl(fd, Libc.EPOLL_CTL_DEL, target, MemorySegment.NULL);
    }

    private synchronized void control(int op, Fd target, int events, long token) {
        request.set(JAVA_INT, EVENTS, events);
        request.set(JAVA_LONG_UNALIGNED, DATA, token);
        Libc.epollCtl(fd, op, target, request);
    }

    /**
     * Waits up to {@code timeoutMillis} (-1: forever, 0: not at all) for a watched descriptor to be
     * ready; returns how many are (0 on timeout), each read with {@link #token(int)} and
     * {@link #events(int)} until the next wait.
     */
    public int wait(int timeoutMillis) {
        count = 0;
        count = Libc.epollWait(fd, ready, capacity, timeoutMillis);
        return count;
    }

    /** The token of the {@code i}th ready descriptor of the last wait. */
    public long token(int i) {
        return ready.get(JAVA_LONG_UNALIGNED, index(i) + DATA);
    }

    /** The events (EPOLLIN, EPOLLHUP...) of the {@code i}th ready descriptor of the last wait. */
    public int events(int i) {
        return ready.get(JAVA_INT, index(i) + EVENTS);
    }

    private long index(int i) {
        if (i < 0 || i >= count) {
            throw new IndexOutOfBoundsException("event " + i + " of " + count + " ready");
        }
        return i * EVENT.byteSize();
    }

    /** Closes the instance and frees its buffer: only once no thread waits in it any more. */
    @Override
    public void close() {
        fd.close();
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}
