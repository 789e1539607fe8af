package dev.kindling.sandbox;

/**
 * What a command run by {@link Sandbox#exec} left: its exit code (128 + the signal number when a
 * signal ended it, as shells report it), its standard output and error as UTF-8, and whether the
 * timeout ended it.
 */
public record ExecResult(int exitCode, String stdout, String stderr, boolean timedOut) {
    /** Exit code 0 and no timeout. */
    public boolean succeeded() {
        return exitCode == 0 && !timedOut;
    }
}
