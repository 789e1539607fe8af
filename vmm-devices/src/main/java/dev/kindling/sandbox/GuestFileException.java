package dev.kindling.sandbox;

/** A file operation the guest refused: {@link #path()} and the guest's errno ({@link #errno()}, such as 2 for ENOENT). */
public final class GuestFileException extends SandboxException {
    private final String path;
    private final int errno;

    public GuestFileException(String path, int errno, String message) {
        super(path + ": " + message, "");
        this.path = path;
        this.errno = errno;
    }

    public String path() {
        return path;
    }

    public int errno() {
        return errno;
    }
}
