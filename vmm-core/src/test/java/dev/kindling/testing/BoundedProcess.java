package dev.kindling.testing;

import java.io.File;
import java.io.IOException;
import java.lang.ProcessBuilder.Redirect;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs a helper command (make, gcc, a compiled probe) for a test with a time limit. Output (stdout and
 * stderr together) goes to a temporary file, not a pipe, so neither a quiet hang nor a descendant that
 * keeps the pipe open can hold the test beyond the limit; at the limit the process and its descendants
 * are killed.
 */
public final class BoundedProcess {
    /** How long a killed process may take to go away before the run fails anyway. */
    private static final Duration KILL_GRACE = Duration.ofSeconds(10);

    private BoundedProcess() {}

    /**
     * The outcome: {@code exitCode} is meaningful only if the process ended by itself; {@code pid} is
     * the process the command started.
     */
    public record Result(List<String> command, boolean timedOut, int exitCode, String output, long pid) {
        public boolean succeeded() {
            return !timedOut && exitCode == 0;
        }

        /** One line for an error message: what ran and how it ended. */
        public String describe() {
            return String.join(" ", command) + (timedOut ? " did not finish in time and was killed" : " exited with " + exitCode);
        }
    }

    /** Runs {@code command} in {@code dir} (the current directory if null), killing it after {@code limit}. */
    public static Result run(Duration limit, Path dir, List<String> command) throws IOException, InterruptedException {
        Path log = Files.createTempFile("kindling-process-", ".log");
        try {
            ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectOutput(log.toFile()).redirectInput(Redirect.from(new File("/dev/null")));
            if (dir != null) {
                pb.directory(dir.toFile());
            }
            Process p = pb.start();
            boolean ended;
            try {
                ended = p.waitFor(limit.toNanos(), TimeUnit.NANOSECONDS);
            } finally {
                if (p.isAlive()) {
                    kill(p); // timed out, or this thread was interrupted
                }
            }
            String output = Files.readString(log, StandardCharsets.UTF_8);
            return new Result(List.copyOf(command), !ended, ended ? p.exitValue() : -1, output, p.pid());
        } finally {
            Files.deleteIfExists(log);
        }
    }

    public static Result run(Duration limit, String... command) throws IOException, InterruptedException {
        return run(limit, null, List.of(command));
    }

    /** Whether {@code command} can be started and exits with 0 within {@code limit}. */
    public static boolean works(Duration limit, String... command) throws InterruptedException {
        try {
            return run(limit, command).succeeded();
        } catch (IOException e) {
            return false; // not installed, or not executable
        }
    }

    private static void kill(Process p) throws InterruptedException {
        // listed before the parent dies (then they are reparented); their own children are found
        // through them, since a killed parent can start no new ones
        List<ProcessHandle> family = p.descendants().toList();
        p.destroyForcibly();
        for (ProcessHandle h : family) {
            h.descendants().forEach(ProcessHandle::destroyForcibly);
            h.destroyForcibly();
        }
        if (!p.waitFor(KILL_GRACE.toNanos(), TimeUnit.NANOSECONDS)) {
            throw new IllegalStateException("process " + p.pid() + " survived SIGKILL for " + KILL_GRACE);
        }
    }
}
