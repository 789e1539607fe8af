package dev.kindling.testing;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;

/**
 * What a test needs from the machine (/dev/kvm, a KVM capability, gcc, kernel headers, the test
 * kernel). Where it is missing the test is skipped with the reason; with {@code KINDLING_REQUIRE_KVM=1}
 * (CI) it fails with the same reason, so a run cannot pass by skipping.
 */
public final class Require {
    public static final String STRICT_VARIABLE = "KINDLING_REQUIRE_KVM";

    private static final Require ENVIRONMENT = new Require(strict(System.getenv(STRICT_VARIABLE)));

    private final boolean strict;

    Require(boolean strict) {
        this.strict = strict;
    }

    /** Skips (or, in strict mode, fails) the test with {@code reason} unless {@code available}. */
    public static void that(boolean available, String reason) {
        if (!available) {
            ENVIRONMENT.missing(reason, null);
        }
    }

    /** Skips (or, in strict mode, fails) the test with {@code reason}; never returns. */
    public static <T> T unavailable(String reason) {
        return ENVIRONMENT.missing(reason, null);
    }

    /** {@link #unavailable(String)} keeping what went wrong as the cause of a strict failure. */
    public static <T> T unavailable(String reason, Throwable cause) {
        return ENVIRONMENT.missing(reason, cause);
    }

    /**
     * Skips the test with {@code reason} unless {@code available}, in strict mode too: for hardware the
     * test hosts cannot have (a host device bound to VFIO), which a developer supplies by hand.
     */
    public static void hostHardware(boolean available, String reason) {
        if (!available) {
            System.out.println("[skipped] " + reason);
            org.junit.jupiter.api.Assumptions.abort(reason);
        }
    }

    /** Whether {@code tool} is an executable in one of the directories of PATH. */
    public static boolean onPath(String tool) {
        return onPath(tool, System.getenv());
    }

    static boolean onPath(String tool, Map<String, String> env) {
        for (String dir : env.getOrDefault("PATH", "").split(":")) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, tool))) {
                return true;
            }
        }
        return false;
    }

    /** Unset, empty or {@code 0}: skip; {@code 1}: fail. Anything else is a mistake in the caller's set-up. */
    static boolean strict(String value) {
        if (value == null || value.isEmpty() || value.equals("0")) {
            return false;
        }
        if (value.equals("1")) {
            return true;
        }
        throw new IllegalStateException(STRICT_VARIABLE + " must be 0 or 1, not '" + value + "'");
    }

    <T> T missing(String reason, Throwable cause) {
        if (strict) {
            return Assertions.fail(reason + " (" + STRICT_VARIABLE + "=1: required, not skipped)", cause);
        }
        return Assumptions.abort(reason);
    }
}
