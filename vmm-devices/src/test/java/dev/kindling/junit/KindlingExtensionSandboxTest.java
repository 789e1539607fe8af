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
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.testkit.engine.EngineExecutionResults;
import org.junit.platform.testkit.engine.EngineTestKit;

/**
 * Real sandboxes injected into a static field (one for the class) and an instance field (one per test),
 * under JUnit's test kit: all are clones of one Linux boot, each writing only to its own copy.
 */
@Timeout(1200)
class KindlingExtensionSandboxTest {
    @ExtendWith({FixtureRun.class, KindlingExtension.class})
    @SandboxConfig(bootTimeoutSeconds = 900)
    static class WithSandbox {
        static Sandbox shared;
        Sandbox mine;

        /** This test's own sandbox: a clone, with no other test's write in it. */
        private void ownClone(FixtureRun.Run run, String test) {
            run.saw("shared", shared.vm());
            run.saw("mine", mine.vm());
            assertThat(mine.console().text()).as("a clone does not boot").doesNotContain("KINDLING-INIT-OK");
            assertThat(mine.exec("sh", "-c", "test ! -e /mine && echo " + test + " > /mine")).succeeded();
        }

        @Test
        void runs(FixtureRun.Run run) {
            ownClone(run, "runs");
            assertThat(shared.exec("echo", "6*7")).succeeded().stdoutIsEqualTo("6*7\n");
            assertThat(mine.exec("sh", "-c", "echo err >&2; exit 3")).hasExitCode(3).stderrContains("err");
        }

        @Test
        void fails(FixtureRun.Run run) {
            ownClone(run, "fails");
            assertThat(shared.exec("sh", "-c", "echo oops > /dev/console; echo oops >&2; exit 1")).succeeded();
        }
    }

    @Test
    void sandboxesAreClonesOfOneBootAndAFailureShowsTheirConsoles() {
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
            List<GuestConsoleOutput> outputs = Arrays.stream(t.getSuppressed()).filter(GuestConsoleOutput.class::isInstance)
                    .map(GuestConsoleOutput.class::cast).toList();
            assertThat(outputs).extracting(GuestConsoleOutput::guest).containsExactlyInAnyOrder("WithSandbox.shared", "WithSandbox.mine");
            assertThat(outputs.stream().filter(c -> c.guest().equals("WithSandbox.shared")))
                    .singleElement().satisfies(c -> assertThat(c.text()).as("what the guest printed since its clone started")
                            .contains("oops").doesNotContain("KINDLING-AGENT-READY"));
            assertThat(run.seen("shared")).hasSize(2).allSatisfy(s -> assertThat(s.guest()).isSameAs(run.seen("shared").getFirst().guest()));
            assertThat(run.seen("mine")).hasSize(2).extracting(FixtureRun.Seen::guest).doesNotHaveDuplicates();
            assertThat(run.seen()).allSatisfy(s -> assertThat(s.vm().state()).isEqualTo(Machine.State.CLOSED));
        }
    }
}
