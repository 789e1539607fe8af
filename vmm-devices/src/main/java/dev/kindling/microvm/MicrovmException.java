package dev.kindling.microvm;

/**
 * Why a microVM cannot be built: its configuration ({@link ConfigException}) or this host
 * ({@link HostException}). Unchecked, like the other failures of a builder.
 */
public abstract sealed class MicrovmException extends RuntimeException permits ConfigException, HostException {
    private static final long serialVersionUID = 1L;

    MicrovmException(String message, Throwable cause) {
        super(message, cause);
    }
}
