package dev.kindling.devices.virtio.queue;

/**
 * The driver put something into a queue that the device must not serve. {@link InvalidChain}: one
 * request is bad (the device fails that request and goes on). {@link BrokenQueue}: the queue itself
 * is unusable (the device sets DEVICE_NEEDS_RESET).
 */
public sealed abstract class VirtqueueException extends Exception {
    private static final long serialVersionUID = 1L;

    VirtqueueException(String message) {
        super(message);
    }

    /** The chain at {@link #head()} is malformed; it has been consumed from the available ring. */
    public static final class InvalidChain extends VirtqueueException {
        private static final long serialVersionUID = 1L;
        private final int head;

        public InvalidChain(int head, String message) {
            super("descriptor chain at head " + head + ": " + message);
            this.head = head;
        }

        /** The head to return in the used ring (with length 0, or the device's error status). */
        public int head() {
            return head;
        }
    }

    /** The available ring is corrupt (an index that jumped, a head past the queue size, unreadable rings). */
    public static final class BrokenQueue extends VirtqueueException {
        private static final long serialVersionUID = 1L;

        public BrokenQueue(String message) {
            super(message);
        }
    }
}
