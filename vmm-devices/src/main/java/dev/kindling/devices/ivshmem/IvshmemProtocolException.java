package dev.kindling.devices.ivshmem;

/** An ivshmem server broke the protocol (docs/specs/ivshmem-spec.txt), closed too early, or was too slow. */
public final class IvshmemProtocolException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public IvshmemProtocolException(String message) {
        super(message);
    }

    public IvshmemProtocolException(String message, Throwable cause) {
        super(message, cause);
    }
}
