package dev.kindling.sandbox;

import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.testing.Require;
import java.time.Duration;

/**
 * Sandboxes for the Linux tests: the guest of scripts/build-guest-kernel.sh with the agent
 * (KINDLING_GUEST_DIR, else the newest built one). Tests skip (fail in strict mode) without KVM or
 * without that guest.
 */
final class TestSandboxes {
    /** A boot takes 1-5 minutes here, where guest kernel code is emulated and other work loads the host. */
    static final Duration BOOT = Duration.ofMinutes(15);

    private TestSandboxes() {}

    static Sandbox.Builder builder(String name) {
        TestGuests.assumeKvm();
        String unavailable = System.getenv("KINDLING_GUEST_UNAVAILABLE");
        Require.that(System.getenv("KINDLING_GUEST_DIR") != null || unavailable == null, "no Linux test kernel: " + unavailable);
        try {
            GuestDir.locate();
        } catch (IllegalStateException e) {
            Require.unavailable(e.getMessage());
        }
        return Sandbox.builder().name(name).bootTimeout(BOOT);
    }

    static String progress(String what) {
        System.out.println("[sandbox test] " + what);
        return what;
    }
}
