package dev.kindling.examples;

import static dev.kindling.junit.KindlingAssertions.assertThat;

import dev.kindling.junit.KindlingExtension;
import dev.kindling.junit.SandboxConfig;
import dev.kindling.sandbox.ExecResult;
import dev.kindling.sandbox.Sandbox;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The JUnit example: {@link KindlingExtension} boots a throwaway guest for the test's parameter and
 * destroys it after the test, whatever the test did to it.
 */
@ExtendWith(KindlingExtension.class)
class ThrowawayGuestTest {
    @BeforeAll
    static void needsKvmAndTheGuest() throws Exception {
        GuestDir.locate();
    }

    @Test
    @Timeout(900)
    void aThrowawayGuestRunsCommandsAndKeepsFiles(@SandboxConfig(memoryMib = 128, bootTimeoutSeconds = 600) Sandbox sandbox) {
        sandbox.put("/tmp/greeting", "hello\n".getBytes(StandardCharsets.UTF_8));
        ExecResult r = sandbox.exec(Duration.ofMinutes(1), "sh", "-c", "tr a-z A-Z < /tmp/greeting; echo oops >&2; exit 7");
        assertThat(r).hasExitCode(7).stdoutIsEqualTo("HELLO\n").stderrContains("oops").hasNotTimedOut();
    }
}
