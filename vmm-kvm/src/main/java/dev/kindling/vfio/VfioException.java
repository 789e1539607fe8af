package dev.kindling.vfio;

/** VFIO is missing or refused: the message names what (the device node, the module, the call). */
public final class VfioException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public VfioException(String message) {
        super(message);
    }

    public VfioException(String message, Throwable cause) {
        super(message, cause);
    }
}
