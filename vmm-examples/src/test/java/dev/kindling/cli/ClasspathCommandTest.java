package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.testing.BoundedProcess;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ./kindling classpath}: a user's single-file program, run by the JDK's source launcher with
 * that class path and no build of its own, reaches the library (microvm, sandbox, kvm).
 */
@Timeout(900)
class ClasspathCommandTest {
    /** The launcher builds the project first when its sources changed (a minute or so here, more under load). */
    private static final Duration LAUNCHER_LIMIT = Duration.ofMinutes(12);
    private static final Duration PROGRAM_LIMIT = Duration.ofMinutes(2);

    private static final String PROBE = """
            import dev.kindling.kvm.Kvm;
            import dev.kindling.microvm.Microvm;
            import dev.kindling.sandbox.ExecResult;

            class Probe {
                public static void main(String[] args) {
                    System.out.println("sandbox " + new ExecResult(0, "42", "", false).succeeded());
                    try {
                        Microvm.builder().memoryMib(16).build();
                    } catch (RuntimeException e) {
                        System.out.println("builder " + e.getClass().getSimpleName() + ": " + e.getMessage());
                    }
                    if (args.length > 0) {
                        try (Kvm kvm = Kvm.open()) {
                            System.out.println("kvm api " + kvm.apiVersion());
                        }
                    }
                }
            }
            """;

    @TempDir
    Path tmp;

    @Test
    void aSourceFileProgramRunsAgainstTheLibraryWithThePrintedClassPath() throws Exception {
        Path launcher = TestGuests.root().resolve("kindling");
        BoundedProcess.Result cp = BoundedProcess.run(LAUNCHER_LIMIT, tmp, List.of(launcher.toString(), "classpath"));
        assertThat(cp.succeeded()).as(cp.describe() + "\n" + cp.output()).isTrue();
        // the build's own message, if the launcher built, comes first (on stderr); the class path is the last line
        List<String> lines = cp.output().lines().toList();
        String classPath = lines.getLast();
        List<Path> entries = Arrays.stream(classPath.split(":")).map(Path::of).toList();
        assertThat(entries).allSatisfy(p -> assertThat(p).isAbsolute().exists());
        assertThat(entries.stream().map(p -> p.getFileName().toString()))
                .anySatisfy(n -> assertThat(n).startsWith("vmm-devices-"))
                .anySatisfy(n -> assertThat(n).startsWith("vmm-kvm-"))
                .anySatisfy(n -> assertThat(n).startsWith("jackson-databind-"));

        Path probe = Files.writeString(tmp.resolve("Probe.java"), PROBE);
        boolean kvm = Files.isReadable(Path.of("/dev/kvm")) && Files.isWritable(Path.of("/dev/kvm"));
        List<String> java = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", classPath, probe.toString()));
        if (kvm) {
            java.add("kvm");
        }
        BoundedProcess.Result run = BoundedProcess.run(PROGRAM_LIMIT, tmp, java);
        assertThat(run.succeeded()).as(run.describe() + "\n" + run.output()).isTrue();
        // standard error is in the output too: no warning about native access or anything else
        List<String> expected = new ArrayList<>(List.of("sandbox true", "builder ConfigException: no kernel: call kernel(path)"));
        if (kvm) {
            expected.add("kvm api 12");
        }
        assertThat(run.output().lines().toList()).isEqualTo(expected);
    }
}
