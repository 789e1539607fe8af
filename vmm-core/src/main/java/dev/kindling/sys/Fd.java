package dev.kindling.sys;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * A file descriptor: closed exactly once, however many times {@link #close()} is called, and unusable
 * afterwards (so a recycled number is never touched by mistake). A borrowed one (standard input, say)
 * becomes unusable on close() but stays open for its owner.
 */
public final class Fd implements AutoCloseable {
    private static final int CLOSED = -1;
    private final AtomicInteger fd;
    private final String what;
    private final boolean owned;

    private Fd(int fd, String what, boolean owned) {
        if (fd < 0) {
            throw new IllegalArgumentException("negative file descriptor " + fd + " for " + what);
        }
        this.fd = new AtomicInteger(fd);
        this.what = what;
        this.owned = owned;
    }

    /** Takes ownership of {@code fd}; {@code what} names it in errors (e.g. "/dev/kvm", "eventfd"). */
    public static Fd adopt(int fd, String what) {
        return new Fd(fd, what, true);
    }

    /** Uses {@code fd} without owning it: {@link #close()} leaves the descriptor open. */
    public static Fd borrow(int fd, String what) {
        return new Fd(fd, what, false);
    }

    /** The number, valid only while this is open. */
    public int value() {
        int v = fd.get();
        if (v == CLOSED) {
            throw new IllegalStateException(what + " is closed");
        }
        return v;
    }

    /** A new owned descriptor for the same open file (close-on-exec), named as this one. */
    public Fd dup() {
        return adopt(Libc.dup(this), what);
    }

    public boolean isOpen() {
        return fd.get() != CLOSED;
    }

    public String what() {
        return what;
    }

    @Override
    public void close() {
        int v = fd.getAndSet(CLOSED);
        if (v != CLOSED && owned) {
            Libc.close(v);
        }
    }

    @Override
    public String toString() {
        int v = fd.get();
        return "Fd[" + what + (v == CLOSED ? ", closed]" : ", " + v + "]");
    }
}
