package dev.kindling.devices.virtio.net;

import dev.kindling.sys.Epoll;
import dev.kindling.sys.Fd;

/**
 * A backend's {@link NetBackend#readable()}: an epoll instance watching the backend's own descriptor,
 * readable while that descriptor is. A backend whose peer is gone for good (passt exited, the tap
 * deleted) stops watching it, so the device thread, which keeps waiting on this descriptor, is not
 * woken again and again by an end of stream nobody can consume.
 */
final class Readiness implements AutoCloseable {
    private final Epoll epoll = Epoll.create(1);
    private final Fd watched;
    private boolean watching;

    Readiness(Fd watched) {
        this.watched = watched;
        try {
            epoll.add(watched, Epoll.EPOLLIN, 0);
            watching = true;
        } catch (RuntimeException | Error e) {
            epoll.close();
            throw e;
        }
    }

    Fd fd() {
        return epoll.fd();
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

    synchronized boolean stopped() {
        return !watching;
    }

    @Override
    public void close() {
        epoll.close();
    }
}
