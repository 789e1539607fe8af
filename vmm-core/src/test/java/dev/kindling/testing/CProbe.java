package dev.kindling.testing;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A C program a layout test writes to print what the machine's headers say (sizes, offsets,
 * constants), one {@code name value} line each: compiled with gcc and run, both with a time limit.
 */
public final class CProbe {
    /** Far more than gcc and the probe take; only a hang reaches it. */
    private static final Duration LIMIT = Duration.ofSeconds(300);

    private CProbe() {}

    /**
     * Writes {@code source} to {@code dir/name.c}, compiles it with gcc (and {@code gccOptions}), runs
     * it and returns what it printed, name to value, in order; fails the test if either step fails.
     */
    public static Map<String, String> printed(Path dir, String name, CharSequence source, String... gccOptions)
            throws IOException, InterruptedException {
        Files.createDirectories(dir);
        Path src = Files.writeString(dir.resolve(name + ".c"), source);
        Path bin = dir.resolve(name);
        List<String> gcc = new ArrayList<>(List.of("gcc"));
        gcc.addAll(List.of(gccOptions));
        gcc.addAll(List.of("-o", bin.toString(), src.toString()));
        BoundedProcess.Result build = BoundedProcess.run(LIMIT, null, gcc);
        assertTrue(build.succeeded(), () -> build.describe() + " on " + src + ":\n" + build.output());
        BoundedProcess.Result run = BoundedProcess.run(LIMIT, bin.toString());
        assertTrue(run.succeeded(), () -> run.describe() + ":\n" + run.output());
        Map<String, String> values = new LinkedHashMap<>();
        for (String line : run.output().lines().toList()) {
            int sp = line.indexOf(' ');
            assertTrue(sp > 0, () -> bin + " printed '" + line + "', not 'name value'");
            values.put(line.substring(0, sp), line.substring(sp + 1));
        }
        return values;
    }
}
