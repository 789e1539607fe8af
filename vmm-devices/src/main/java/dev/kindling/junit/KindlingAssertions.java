package dev.kindling.junit;

/**
 * AssertJ entry points for Kindling types: {@code assertThat(vm.console()).eventuallyContains("login:",
 * Duration.ofSeconds(30))} and {@code assertThat(result).succeeded().stdoutContains("42")}. Static
 * import next to AssertJ's own {@code Assertions.assertThat}.
 *
 * <p>CONTRACT STUB: to be implemented (issue 16).
 */
public final class KindlingAssertions {
    private KindlingAssertions() {
    }
}
