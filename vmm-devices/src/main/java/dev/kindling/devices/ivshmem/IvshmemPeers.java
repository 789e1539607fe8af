package dev.kindling.devices.ivshmem;

import dev.kindling.sys.EventFd;
import java.util.List;

/**
 * What an ivshmem peer learns from its server (QEMU's docs/specs/ivshmem-spec.txt): its own id, its
 * own eventfds (one per interrupt vector: a signal on one is an interrupt for this peer), and every
 * other peer's eventfds (a signal is a doorbell rung to that peer), which change as peers come and
 * go. {@link IvshmemClient} implements it over the server's Unix socket; a doorbell
 * {@link IvshmemDevice} uses it. The descriptors stay this object's: users neither close nor keep
 * them past {@link Listener#peerLeft}.
 */
public interface IvshmemPeers {
    /** This peer's id, 0-65535. */
    int ownId();

    /** This peer's eventfds, vector 0 first. */
    List<EventFd> ownEventFds();

    /**
     * Adds {@code listener} and replays to it, on the calling thread, every other peer's eventfds
     * known now; later changes reach it on the thread that reads the server. Closing the result
     * removes it.
     */
    AutoCloseable watch(Listener listener);

    /** Peer changes, in the order the server announced them. */
    interface Listener {
        /** Peer {@code peer} rings its vector {@code vector} through {@code eventFd}. */
        void eventFdAdded(int peer, int vector, EventFd eventFd);

        /** Peer {@code peer} left: its eventfds are about to be closed. */
        void peerLeft(int peer);
    }
}
