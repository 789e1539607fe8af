package dev.kindling.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.util.List;

/** poll(2) over a set of descriptors. */
public final class Poller {
    /** {@code struct pollfd}. */
    public static final StructLayout POLLFD = MemoryLayout.structLayout(
            ValueLayout.JAVA_INT.withName("fd"),
            ValueLayout.JAVA_SHORT.withName("events"),
            ValueLayout.JAVA_SHORT.withName("revents"));

    private Poller() {}

    /** True if {@code fd} became readable within {@code timeoutMillis} (-1: wait forever). */
    public static boolean waitReadable(Fd fd, int timeoutMillis) {
        return waitAny(List.of(fd), timeoutMillis) >= 0;
    }

    /**
     * Waits until one of {@code fds} is readable (or hung up); returns its index, or -1 on timeout.
     * Signals do not end the wait.
     */
    public static int waitAny(List<Fd> fds, int timeoutMillis) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment set = arena.allocate(POLLFD, fds.size());
            for (int i = 0; i < fds.size(); i++) {
                MemorySegment e = set.asSlice(i * POLLFD.byteSize(), POLLFD);
                e.set(ValueLayout.JAVA_INT, 0, fds.get(i).value());
                e.set(ValueLayout.JAVA_SHORT, 4, Libc.POLLIN);
            }
            int n = Libc.poll(set, fds.size(), timeoutMillis);
            if (n <= 0) {
                return -1;
            }
            for (int i = 0; i < fds.size(); i++) {
                if (set.get(ValueLayout.JAVA_SHORT, i * POLLFD.byteSize() + 6) != 0) {
                    return i;
                }
            }
            return -1;
        }
    }
}
