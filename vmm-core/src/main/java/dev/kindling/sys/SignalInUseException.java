package dev.kindling.sys;

/** The host program already handles the signal Kindling needs for itself (see {@link ThreadKick}). */
public final class SignalInUseException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    public SignalInUseException(String message) {
        super(message);
    }
}
