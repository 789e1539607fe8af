package dev.kindling.sandbox;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A command to run: argv, extra environment, working directory, stdin bytes (or streamed stdin for
 * {@link Sandbox#start}) and a timeout. Immutable; the {@code with...} methods return copies.
 */
public record Exec(List<String> argv, Map<String, String> env, String workingDirectory, byte[] stdin,
        boolean streamStdin, Optional<Duration> timeout) {
    public Exec {
        argv = List.copyOf(argv);
        env = Map.copyOf(env);
        if (argv.isEmpty()) {
            throw new IllegalArgumentException("an Exec needs at least argv[0]");
        }
        stdin = stdin == null ? null : stdin.clone();
    }

    public static Exec of(String... argv) {
        return new Exec(List.of(argv), Map.of(), "", null, false, Optional.empty());
    }

    public Exec withEnv(Map<String, String> extra) {
        var m = new java.util.LinkedHashMap<>(env);
        m.putAll(extra);
        return new Exec(argv, m, workingDirectory, stdin, streamStdin, timeout);
    }

    public Exec withWorkingDirectory(String dir) {
        return new Exec(argv, env, dir, stdin, streamStdin, timeout);
    }

    /** The command reads these bytes, then end of file. */
    public Exec withStdin(byte[] bytes) {
        return new Exec(argv, env, workingDirectory, bytes, false, timeout);
    }

    /** For {@link Sandbox#start}: stdin is {@link ExecHandle#stdin()}. */
    public Exec withStreamedStdin() {
        return new Exec(argv, env, workingDirectory, null, true, timeout);
    }

    public Exec withTimeout(Duration t) {
        return new Exec(argv, env, workingDirectory, stdin, streamStdin, Optional.of(t));
    }
}
