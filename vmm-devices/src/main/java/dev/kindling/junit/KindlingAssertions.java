package dev.kindling.junit;

import dev.kindling.microvm.Console;
import dev.kindling.sandbox.ExecResult;

/**
 * AssertJ entry points for Kindling types: {@code assertThat(vm.console()).eventuallyContains("login:",
 * Duration.ofSeconds(30))} and {@code assertThat(result).succeeded().stdoutContains("42")}. Static
 * import next to AssertJ's own {@code Assertions.assertThat}.
 */
public final class KindlingAssertions {
    private KindlingAssertions() {
    }

    public static ConsoleAssert assertThat(Console actual) {
        return new ConsoleAssert(actual);
    }

    public static ExecResultAssert assertThat(ExecResult actual) {
        return new ExecResultAssert(actual);
    }
}
