package dev.kindling.junit;

import static dev.kindling.junit.KindlingAssertions.assertThat;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.microvm.ConfigException;
import dev.kindling.microvm.Microvm;
import dev.kindling.testing.Require;
import java.time.Duration;
import java.util.Optional;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** A Microvm with the default kernel: the Linux guest of scripts/build-guest-kernel.sh, booted by the extension. */
@ExtendWith(KindlingExtension.class)
@Timeout(900)
class KindlingExtensionLinuxTest {
    private static final Duration BOOT = Duration.ofMinutes(10);

    @BeforeAll
    static void builtGuest() {
        TestGuests.assumeKvm();
        try {
            BuiltGuest.locate(System::getenv, k -> Optional.ofNullable(System.getProperty(k)));
        } catch (ConfigException e) {
            Require.unavailable(e.getMessage(), e);
        }
    }

    @Test
    void theDefaultGuestBootsWithItsBaseCommandLineAndTheArgumentsGiven(
            @MicrovmConfig(memoryMib = 64, cmdline = "quiet percpu_alloc=page kindling.action=poweroff") Microvm vm)
            throws InterruptedException {
        assertThat(vm.console()).eventuallyContains("KINDLING-INIT-OK", BOOT);
        assertThat(vm.awaitExit(BOOT)).as("powered off").isPresent();
        // the base command line (console=ttyS0 ... noxsave) and the test's own arguments after it
        assertThat(vm.console()).contains("KINDLING-CMDLINE console=ttyS0").contains("noxsave")
                .contains("kindling.action=poweroff");
    }
}
