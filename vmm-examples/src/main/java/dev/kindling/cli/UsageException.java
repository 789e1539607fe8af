package dev.kindling.cli;

/** Bad command-line arguments: the message is printed with the usage. */
final class UsageException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    UsageException(String message) {
        super(message);
    }
}
