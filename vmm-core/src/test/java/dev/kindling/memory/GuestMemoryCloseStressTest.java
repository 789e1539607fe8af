package dev.kindling.memory;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.testing.BoundedProcess;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Closes guest memory under hammering threads for many rounds in a child JVM ({@link CloseRaceChild}),
 * so that an access reaching unmapped memory (JDK-8364167) shows as a crashed child rather than a
 * dead test fork. Bounded: the child stops after {@link #CHILD_SECONDS} or {@link #MAX_ROUNDS}.
 */
class GuestMemoryCloseStressTest {
    private static final int CHILD_SECONDS = 25;
    private static final int MAX_ROUNDS = 100_000;

    @Test
    void closingUnderManyHammeringRoundsNeverCrashesTheJvm(@TempDir Path dir) throws Exception {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        BoundedProcess.Result r = BoundedProcess.run(Duration.ofSeconds(CHILD_SECONDS + 60), dir, List.of(
                java.toString(), "--enable-native-access=ALL-UNNAMED",
                "-XX:-CreateCoredumpOnCrash", "-XX:ErrorFile=" + dir.resolve("hs_err_%p.log"),
                "-cp", System.getProperty("java.class.path"),
                CloseRaceChild.class.getName(), Integer.toString(CHILD_SECONDS), Integer.toString(MAX_ROUNDS)));
        try (var crashes = Files.list(dir)) {
            assertThat(crashes.map(p -> p.getFileName().toString())).as("JVM crash reports of the child").isEmpty();
        }
        assertThat(r.succeeded()).as(r.describe() + ":\n" + r.output()).isTrue();
        assertThat(r.output()).containsPattern("CLOSE-RACE-ROUNDS [1-9]");
        r.output().lines().filter(l -> l.startsWith("CLOSE-RACE-ROUNDS")).forEach(System.out::println);
    }
}
