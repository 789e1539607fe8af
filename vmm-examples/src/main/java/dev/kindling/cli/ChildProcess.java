package dev.kindling.cli;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.lang.ProcessBuilder.Redirect;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * Runs a helper program (make, apt-get, the guest kernel build, a benchmark) with a time limit.
 * Standard input is /dev/null and standard output goes to a temporary file, not a pipe this process
 * must drain first, so neither a quiet hang nor a descendant that keeps the output open can outlast the
 * limit; at the limit the process and its descendants are killed.
 */
final class ChildProcess {
    /** How long a killed process may take to go away. */
    private static final Duration KILL_GRACE = Duration.ofSeconds(10);

    private ChildProcess() {}

    /** How it ended: its exit status and its output (standard output, with standard error unless that went elsewhere). */
    record Result(int exitStatus, String output) {
        List<String> lines() {
            return output.lines().toList();
        }
    }

    /**
     * A helper program failed or did not finish in time: one line saying which and how, printed
     * without a stack trace.
     */
    static final class Failure extends IOException {
        private static final long serialVersionUID = 1L;

        Failure(String message) {
            super(message);
        }
    }

    /** Runs {@code command} with standard output and standard error together into the result. */
    static Result run(Duration limit, List<String> command) throws IOException, InterruptedException {
        return run(limit, new ProcessBuilder(command).redirectErrorStream(true), null);
    }

    /**
     * Runs {@code pb} (its command, directory and environment as set). Standard error goes into the
     * result with standard output if {@code errorLines} is null, else to {@code errorLines} a line at a
     * time as the program prints it.
     */
    static Result run(Duration limit, ProcessBuilder pb, Consumer<String> errorLines) throws IOException, InterruptedException {
        Path log = Files.createTempFile("kindling-process-", ".log");
        try {
            pb.redirectInput(Redirect.from(new File("/dev/null"))).redirectOutput(log.toFile())
                    .redirectErrorStream(errorLines == null);
            if (errorLines != null) {
                pb.redirectError(Redirect.PIPE);
            }
            Process p = pb.start();
            Thread reader = errorLines == null ? null : Thread.ofPlatform().daemon().name("kindling-child-stderr")
                    .start(() -> forwardLines(p, errorLines));
            int status = waitFor(p, String.join(" ", pb.command()), limit);
            if (reader != null) {
                // ends with the program, unless a descendant it left behind still holds standard error
                reader.join(KILL_GRACE);
            }
            return new Result(status, Files.readString(log, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(log);
        }
    }

    private static void forwardLines(Process p, Consumer<String> errorLines) {
        try (BufferedReader r = p.errorReader(StandardCharsets.UTF_8)) {
            for (String line = r.readLine(); line != null; line = r.readLine()) {
                errorLines.accept(line);
            }
        } catch (IOException e) {
            // the program was killed and its pipe closed
        }
    }

    /**
     * Waits up to {@code limit} for {@code p} to end and returns its exit status; past the limit, or if
     * this thread is interrupted, kills it and its descendants.
     */
    static int waitFor(Process p, String what, Duration limit) throws Failure, InterruptedException {
        boolean ended = false;
        try {
            ended = p.waitFor(limit.toNanos(), TimeUnit.NANOSECONDS);
        } finally {
            if (!ended) {
                kill(p);
            }
        }
        if (!ended) {
            throw new Failure(what + " did not finish within " + describe(limit) + " and was killed");
        }
        return p.exitValue();
    }

    /** Kills {@code p} and its descendants, and waits (a bounded time) for it to go. */
    static void kill(Process p) throws InterruptedException {
        // listed before the parent dies (then they are reparented); their own children are found
        // through them, since a killed parent can start no new ones
        List<ProcessHandle> family = p.descendants().toList();
        p.destroyForcibly();
        for (ProcessHandle h : family) {
            h.descendants().forEach(ProcessHandle::destroyForcibly);
            h.destroyForcibly();
        }
        p.waitFor(KILL_GRACE.toNanos(), TimeUnit.NANOSECONDS);
    }

    static String describe(Duration d) {
        return d.toSeconds() >= 60 && d.toSeconds() % 60 == 0 ? d.toMinutes() + " min" : d.toSeconds() + " s";
    }
}
