package dev.kindling.junit;

import dev.kindling.microvm.Console;
import java.time.Duration;
import org.assertj.core.api.AbstractAssert;

/** Assertions on a guest's {@link Console}; a failure shows the end of what the guest printed. */
public final class ConsoleAssert extends AbstractAssert<ConsoleAssert, Console> {
    ConsoleAssert(Console actual) {
        super(actual, ConsoleAssert.class);
    }

    /**
     * Waits up to {@code timeout} for the console to show {@code text} ({@link Console#awaitText});
     * fails at once when the guest ended without printing it.
     */
    public ConsoleAssert eventuallyContains(String text, Duration timeout) {
        isNotNull();
        boolean seen;
        try {
            seen = actual.awaitText(text, timeout);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw failure("%nInterrupted while waiting for the guest console to show%n  \"%s\"%nThe console so far:%n%s",
                    text, GuestConsoleOutput.tail(actual.text()));
        }
        if (!seen) {
            failWithMessage("%nExpecting the guest console to show%n  \"%s\"%nwithin %s (or before the guest ended), "
                    + "but it did not. The console (last lines):%n%s", text, timeout, GuestConsoleOutput.tail(actual.text()));
        }
        return this;
    }

    /** The console shows {@code text} now. */
    public ConsoleAssert contains(String text) {
        isNotNull();
        String all = actual.text();
        if (!all.contains(text)) {
            failWithMessage("%nExpecting the guest console to contain%n  \"%s\"%nbut it does not. The console (last lines):%n%s",
                    text, GuestConsoleOutput.tail(all));
        }
        return this;
    }

    /** The console does not show {@code text} (yet). */
    public ConsoleAssert doesNotContain(String text) {
        isNotNull();
        String all = actual.text();
        if (all.contains(text)) {
            failWithMessage("%nExpecting the guest console not to contain%n  \"%s\"%nbut it does. The console (last lines):%n%s",
                    text, GuestConsoleOutput.tail(all));
        }
        return this;
    }
}
