package dev.kindling.junit;

import static dev.kindling.junit.KindlingAssertions.assertThat;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.Machine;
import dev.kindling.microvm.ConfigException;
import dev.kindling.sandbox.Sandbox;
import dev.kindling.testing.Require;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.testkit.engine.EngineExecutionResults;
import org.junit.platform.testkit.engine.EngineTestKit;

/** A real Sandbox injected into a static field (one Linux boot for the class), under JUnit's test kit. */
@Timeout(1200)
class KindlingExtensionSandboxTest {
    @ExtendWith({FixtureRun.class, KindlingExtension.class})
    @SandboxConfig(bootTimeoutSeconds = 900)
    static class WithSandbox {
        static Sandbox sandbox;

        @Test
        void runs(FixtureRun.Run run) {
            run.saw("runs", sandbox.vm());
            assertThat(sandbox.exec("echo", "6*7")).succeeded().stdoutIsEqualTo("6*7\n");
            assertThat(sandbox.exec("sh", "-c", "echo err >&2; exit 3")).hasExitCode(3).stderrContains("err");
        }

        @Test
        void fails(FixtureRun.Run run) {
            run.saw("fails", sandbox.vm());
            assertThat(sandbox.exec("sh", "-c", "echo oops >&2; exit 1")).succeeded();
        }
    }

    @Test
    void aStaticSandboxServesTheClassAndAFailureShowsItsConsole() {
        TestGuests.assumeKvm();
        try {
            BuiltGuest g = BuiltGuest.locate(System::getenv, k -> Optional.ofNullable(System.getProperty(k)));
            Require.that(Files.exists(g.dir().resolve("agent")), g.dir() + " has no agent: run scripts/build-guest-kernel.sh");
        } catch (ConfigException e) {
            Require.unavailable(e.getMessage(), e);
        }
        try (FixtureRun.Run run = FixtureRun.open()) {
            EngineExecutionResults results = EngineTestKit.engine("junit-jupiter").selectors(selectClass(WithSandbox.class))
                    .configurationParameter(FixtureRun.RUN, run.id).execute();
            results.testEvents().assertStatistics(s -> s.started(2).succeeded(1).failed(1));
            Throwable t = results.testEvents().failed().stream().findFirst().orElseThrow()
                    .getRequiredPayload(TestExecutionResult.class).getThrowable().orElseThrow();
            assertThat(t).isInstanceOf(AssertionError.class).hasMessageContaining("exit code: 1").hasMessageContaining("    oops");
            assertThat(Arrays.stream(t.getSuppressed()).filter(GuestConsoleOutput.class::isInstance)
                    .map(GuestConsoleOutput.class::cast)).singleElement().satisfies(c -> {
                        assertThat(c.guest()).isEqualTo("WithSandbox.sandbox");
                        assertThat(c.text()).contains("KINDLING-AGENT-READY");
                    });
            assertThat(run.seen()).hasSize(2).allSatisfy(s -> {
                assertThat(s.guest()).isSameAs(run.seen().getFirst().guest());
                assertThat(s.vm().state()).isEqualTo(Machine.State.CLOSED);
            });
        }
    }
}
