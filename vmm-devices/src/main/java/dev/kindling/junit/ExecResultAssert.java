package dev.kindling.junit;

import dev.kindling.sandbox.ExecResult;
import org.assertj.core.api.AbstractAssert;

/** Assertions on a command's {@link ExecResult}; a failure shows the whole result (the ends of its outputs). */
public final class ExecResultAssert extends AbstractAssert<ExecResultAssert, ExecResult> {
    ExecResultAssert(ExecResult actual) {
        super(actual, ExecResultAssert.class);
    }

    /** Exit code 0 and no timeout. */
    public ExecResultAssert succeeded() {
        isNotNull();
        if (!actual.succeeded()) {
            failWithMessage("%nExpecting the command to succeed (exit code 0, not timed out), but it did not:%n%s", describe());
        }
        return this;
    }

    public ExecResultAssert hasExitCode(int expected) {
        isNotNull();
        if (actual.exitCode() != expected) {
            failWithMessage("%nExpecting exit code %s, but it was %s:%n%s", expected, actual.exitCode(), describe());
        }
        return this;
    }

    public ExecResultAssert stdoutContains(String text) {
        isNotNull();
        if (!actual.stdout().contains(text)) {
            failWithMessage("%nExpecting stdout to contain%n  \"%s\"%nbut it does not:%n%s", text, describe());
        }
        return this;
    }

    public ExecResultAssert stderrContains(String text) {
        isNotNull();
        if (!actual.stderr().contains(text)) {
            failWithMessage("%nExpecting stderr to contain%n  \"%s\"%nbut it does not:%n%s", text, describe());
        }
        return this;
    }

    public ExecResultAssert stdoutIsEqualTo(String expected) {
        isNotNull();
        if (!actual.stdout().equals(expected)) {
            failWithMessage("%nExpecting stdout to be%n  \"%s\"%nbut it is not:%n%s", expected, describe());
        }
        return this;
    }

    public ExecResultAssert hasNotTimedOut() {
        isNotNull();
        if (actual.timedOut()) {
            failWithMessage("%nExpecting the command to end before its timeout, but the timeout ended it:%n%s", describe());
        }
        return this;
    }

    public ExecResultAssert timedOut() {
        isNotNull();
        if (!actual.timedOut()) {
            failWithMessage("%nExpecting the timeout to end the command, but it ended by itself:%n%s", describe());
        }
        return this;
    }

    private String describe() {
        return "  exit code: " + actual.exitCode() + (actual.timedOut() ? " (timed out)" : "")
                + "\n  stdout:\n" + indent(actual.stdout()) + "  stderr:\n" + indent(actual.stderr());
    }

    private static String indent(String output) {
        if (output.isEmpty()) {
            return "    (empty)\n";
        }
        String tail = GuestConsoleOutput.tail(output);
        String cut = tail.length() < output.length() ? "    (... " + (output.length() - tail.length()) + " characters before)\n" : "";
        return cut + tail.lines().map(l -> "    " + l + "\n").reduce("", String::concat);
    }
}
