package dev.kindling.sandbox;

/**
 * A sandbox that cannot do what was asked: its guest died, hung or never came up, or the agent
 * refused the request. {@link #consoleTail()} holds the last lines the guest printed.
 */
public class SandboxException extends RuntimeException {
    private final String consoleTail;

    public SandboxException(String message, String consoleTail, Throwable cause) {
        super(consoleTail.isEmpty() ? message : message + "\n--- guest console (last lines) ---\n" + consoleTail, cause);
        this.consoleTail = consoleTail;
    }

    public SandboxException(String message, String consoleTail) {
        this(message, consoleTail, null);
    }

    /** The last lines of the guest's console when this was thrown (empty when there were none). */
    public String consoleTail() {
        return consoleTail;
    }
}
