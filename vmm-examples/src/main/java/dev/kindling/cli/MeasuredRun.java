package dev.kindling.cli;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs one program whole under {@code guests/out/measure} (see {@code guests/bench/measure.c}): its
 * wall time from fork to exit, and its peak RSS from wait4's {@code ru_maxrss}. That peak must be
 * taken by a small parent process: after exec, a child's {@code ru_maxrss} starts from the high-water
 * mark of the memory it was forked from, so measured from this JVM it would never read below the JVM.
 */
final class MeasuredRun {
    /** How the program ended (exit status, or the signal that killed it), its wall time and peak RSS. */
    record Result(int exitStatus, int signal, long wallNanos, long maxRssKib) {
        boolean exitedWith(int status) {
            return signal == 0 && exitStatus == status;
        }

        String describe() {
            return signal != 0 ? "killed by signal " + signal : "exit status " + exitStatus;
        }
    }

    private MeasuredRun() {}

    /**
     * Runs {@code argv} (its first element an absolute path) with standard input from /dev/null and
     * its two outputs into the given files; it is killed after {@code limit}.
     */
    static Result run(Path measure, List<String> argv, Path stdout, Path stderr, Duration limit)
            throws IOException, InterruptedException {
        Path resultFile = Files.createTempFile("kindling-measure-", ".txt");
        try {
            List<String> cmd = new ArrayList<>(List.of(measure.toString(), resultFile.toString(),
                    Long.toString(Math.max(1, limit.toSeconds()))));
            cmd.addAll(argv);
            Process p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .redirectOutput(stdout.toFile()).redirectError(stderr.toFile()).start();
            // measure kills the program at the limit itself; this only bounds measure
            int status = ChildProcess.waitFor(p, measure.toString(), limit.plusSeconds(30));
            if (status != 0) {
                throw new ChildProcess.Failure(measure + " failed (exit status " + status + "): see " + stderr);
            }
            return parse(Files.readAllLines(resultFile, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(resultFile);
        }
    }

    static Result parse(List<String> lines) throws IOException {
        Map<String, Long> v = new HashMap<>();
        for (String line : lines) {
            String[] f = line.trim().split("\\s+");
            if (f.length == 2) {
                try {
                    v.put(f[0], Long.parseLong(f[1]));
                } catch (NumberFormatException e) {
                    throw new IOException("measure wrote '" + line + "'");
                }
            }
        }
        if (!v.containsKey("wall_ns") || !v.containsKey("maxrss_kib") || (v.containsKey("exit") == v.containsKey("signal"))) {
            throw new IOException("measure wrote an incomplete result: " + lines);
        }
        return new Result(v.getOrDefault("exit", 0L).intValue(), v.getOrDefault("signal", 0L).intValue(),
                v.get("wall_ns"), v.get("maxrss_kib"));
    }
}
