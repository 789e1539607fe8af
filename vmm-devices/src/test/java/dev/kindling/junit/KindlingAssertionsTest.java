package dev.kindling.junit;

import static dev.kindling.junit.KindlingAssertions.assertThat;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.microvm.Microvm;
import dev.kindling.sandbox.ExecResult;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(300)
class KindlingAssertionsTest {
    private static final Duration WAIT = Duration.ofSeconds(60);

    // ---- ExecResult

    private static final ExecResult OK = new ExecResult(0, "6*7=42\n", "a warning\n", false);
    private static final ExecResult FAILED = new ExecResult(2, "", "ls: /nope: No such file or directory\n", false);
    private static final ExecResult KILLED = new ExecResult(137, "partial", "", true);

    @Test
    void aResultThatHoldsPasses() {
        assertThat(OK).succeeded().hasExitCode(0).hasNotTimedOut().stdoutContains("42").stdoutIsEqualTo("6*7=42\n")
                .stderrContains("warning");
        assertThat(FAILED).hasExitCode(2).hasNotTimedOut().stderrContains("No such file");
        assertThat(KILLED).timedOut().hasExitCode(137).stdoutIsEqualTo("partial");
    }

    @Test
    void aResultThatDoesNotHoldFailsShowingTheWholeResult() {
        assertThatThrownBy(() -> assertThat(FAILED).succeeded()).isInstanceOf(AssertionError.class)
                .hasMessageContaining("Expecting the command to succeed").hasMessageContaining("exit code: 2")
                .hasMessageContaining("    ls: /nope: No such file or directory").hasMessageContaining("stdout:\n    (empty)");
        assertThatThrownBy(() -> assertThat(KILLED).succeeded()).hasMessageContaining("exit code: 137 (timed out)");
        assertThatThrownBy(() -> assertThat(OK).hasExitCode(1)).hasMessageContaining("Expecting exit code 1, but it was 0");
        assertThatThrownBy(() -> assertThat(OK).stdoutContains("43")).hasMessageContaining("Expecting stdout to contain")
                .hasMessageContaining("\"43\"").hasMessageContaining("    6*7=42");
        assertThatThrownBy(() -> assertThat(OK).stderrContains("error")).hasMessageContaining("Expecting stderr to contain");
        assertThatThrownBy(() -> assertThat(OK).stdoutIsEqualTo("6*7=42")).hasMessageContaining("Expecting stdout to be");
        assertThatThrownBy(() -> assertThat(KILLED).hasNotTimedOut()).hasMessageContaining("the timeout ended it");
        assertThatThrownBy(() -> assertThat(OK).timedOut()).hasMessageContaining("it ended by itself");
        assertThatThrownBy(() -> assertThat((ExecResult) null).succeeded()).isInstanceOf(AssertionError.class);
        assertThatThrownBy(() -> assertThat(OK).as("python").hasExitCode(3)).hasMessageStartingWith("[python]");
    }

    @Test
    void aLongOutputShowsItsEnd() {
        String out = "line\n".repeat(1000) + "the end\n";
        assertThatThrownBy(() -> assertThat(new ExecResult(1, out, "", false)).succeeded())
                .hasMessageContaining("characters before").hasMessageEndingWith("    the end\n  stderr:\n    (empty)\n");
    }

    // ---- Console

    @Test
    void theConsoleOfAGuestThatEnded() throws Exception {
        TestGuests.assumeKvm();
        try (Microvm vm = Microvm.builder().name("hello").memoryMib(16).kernel(TestGuests.elf("serialhello")).build()) {
            vm.start();
            assertThat(vm.console()).eventuallyContains("Hello, serial!", WAIT).contains("Hello").doesNotContain("Goodbye");
            assertThat(vm.awaitExit(WAIT)).isPresent();
            // the guest has ended: the wait gives up at once rather than after its timeout
            assertThatThrownBy(() -> assertThat(vm.console()).eventuallyContains("Goodbye", Duration.ofMinutes(10)))
                    .isInstanceOf(AssertionError.class)
                    .hasMessageContaining("Expecting the guest console to show\n  \"Goodbye\"\nwithin PT10M")
                    .hasMessageEndingWith("The console (last lines):\nHello, serial!\n");
            assertThatThrownBy(() -> assertThat(vm.console()).contains("Goodbye"))
                    .hasMessageContaining("Expecting the guest console to contain\n  \"Goodbye\"").hasMessageContaining("Hello, serial!");
            assertThatThrownBy(() -> assertThat(vm.console()).doesNotContain("serial"))
                    .hasMessageContaining("Expecting the guest console not to contain\n  \"serial\"");
        }
    }

    @Test
    void eventuallyContainsWaitsForOutputStillToCome() throws Exception {
        TestGuests.assumeKvm();
        // the serial guest says "ready", then waits (polling) for input; 'q' makes it say "bye" and end
        try (Microvm vm = Microvm.builder().name("serial").memoryMib(16).kernel(TestGuests.elf("serial")).build()) {
            vm.start();
            assertThat(vm.console()).eventuallyContains("ready", WAIT);
            assertThatThrownBy(() -> assertThat(vm.console()).eventuallyContains("bye", Duration.ofMillis(200)))
                    .hasMessageContaining("within PT0.2S").hasMessageEndingWith("The console (last lines):\nready\n");
            vm.console().send("q");
            assertThat(vm.console()).eventuallyContains("bye", WAIT);
        }
    }

    @Test
    void aFailureShowsTheConsolesLastLines() {
        String text = "old\n".repeat(500) + "x".repeat(10) + "\n" + "new\n".repeat(GuestConsoleOutput.TAIL_LINES - 1);
        String tail = GuestConsoleOutput.tail(text);
        assertThat(tail.lines()).hasSize(GuestConsoleOutput.TAIL_LINES).first().isEqualTo("xxxxxxxxxx");
        assertThat(GuestConsoleOutput.tail("no line end")).isEqualTo("no line end");
        assertThat(GuestConsoleOutput.tail("")).isEmpty();
        String wide = "y".repeat(GuestConsoleOutput.TAIL_CHARS + 5);
        assertThat(GuestConsoleOutput.tail(wide)).hasSize(GuestConsoleOutput.TAIL_CHARS);
    }
}
