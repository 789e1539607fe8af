package dev.kindling.cli;

/**
 * Something a command needs from the host (a program, the built test guests) is missing and could
 * not be had: the message is one line saying what and how to get it, printed without the usage.
 */
final class PrerequisiteException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    PrerequisiteException(String message) {
        super(message);
    }
}
