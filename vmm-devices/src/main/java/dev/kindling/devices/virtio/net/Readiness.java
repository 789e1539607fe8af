package dev.kindling.devices.virtio.net;

import dev.kindling.sys.Epoll;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.Fd;

/**
 * A backend's {@link NetBackend#readable()}: an epoll instance watching the backend's own descriptor
 * and an eventfd the backend signals while frames it already read wait in its buffer. A backend whose
 * peer is gone for good (passt exited, the tap failed) stops watching its descriptor, so the device
 * thread, which keeps waiting on this one, is not woken again and again by an end of stream nobody
 * can consume.
 */
final class Readiness implements AutoCloseable {
    private final Epoll epoll;
    private final EventFd buffered;
    private final Fd watched;
    private boolean watching;
    private boolean writable;
    private boolean signalled;

    Readiness(Fd watched) {
        this.watched = watched;
        Epoll e = Epoll.create(2);
        EventFd b = null;
        try {
            b = EventFd.nonBlocking();
            e.add(watched, Epoll.EPOLLIN, 0);
            e.add(b.fd(), Epoll.EPOLLIN, 1);
        } catch (RuntimeException | Error t) {
            if (b != null) {
                b.close();
            }
            e.close();
            throw t;
        }
        this.epoll = e;
        this.buffered = b;
        this.watching = true;
    }

    Fd fd() {
        return epoll.fd();
    }

    /** Whether frames wait in the backend's own buffer: readable while they do. */
    synchronized void buffered(boolean waiting) {
        if (waiting != signalled && buffered.fd().isOpen()) {
            if (waiting) {
                buffered.signal();
            } else {
                buffered.read();
            }
            signalled = waiting;
        }
    }

    /** Also readable while the watched descriptor takes writes: for a backend with output to finish. */
    synchronized void wakeWhenWritable(boolean on) {
        if (watching && on != writable) {
            epoll.modify(watched, Epoll.EPOLLIN | (on ? Epoll.EPOLLOUT : 0), 0);
            writable = on;
        }
    }

    /** Stops reporting the watched descriptor; returns false if it had already stopped. */
    synchronized boolean stop() {
        if (!watching) {
            return false;
        }
        watching = false;
        if (watched.isOpen() && epoll.fd().isOpen()) {
            epoll.remove(watched);
        }
        return true;
    }

    @Override
    public synchronized void close() {
        watching = false;
        buffered.close();
        epoll.close();
    }
}
