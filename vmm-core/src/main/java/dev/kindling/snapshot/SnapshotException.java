package dev.kindling.snapshot;

/**
 * A snapshot cannot be taken or restored: a state that is short, corrupted or from another version
 * or host, or a part that cannot be saved. Nothing was left half-restored.
 */
public class SnapshotException extends RuntimeException {
    public SnapshotException(String message) {
        super(message);
    }

    public SnapshotException(String message, Throwable cause) {
        super(message, cause);
    }
}
