package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.vfio.VfioPlatformBackend;
import dev.kindling.devices.vfio.VfioPlatformOptions;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.testing.HostResources;
import dev.kindling.testing.Require;
import dev.kindling.vfio.VfioContainer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * A real platform device through the kernel's VFIO, on a host that has one: set
 * {@code KINDLING_VFIO_PLATFORM_DEVICE} to its sysfs directory (bound to vfio-platform, see the
 * README) and {@code KINDLING_VFIO_PLATFORM_IRQ} to a free GSI (default 10). Skipped with the reason
 * elsewhere, CI included: no test host has a device to give away.
 */
class VfioPlatformHostTest {
    private static final String DEVICE = "KINDLING_VFIO_PLATFORM_DEVICE";

    private static Path device() {
        Require.hostHardware(Files.exists(VfioContainer.DEFAULT_PATH), VfioContainer.DEFAULT_PATH
                + " does not exist: this kernel has no VFIO, so no host device can be passed through");
        String d = System.getenv(DEVICE);
        Require.hostHardware(d != null && !d.isEmpty(), DEVICE + " is not set: name a platform device bound to vfio-platform");
        return Path.of(d);
    }

    @Test
    void theDevicesRegionsAndInterruptsAreSeenAndAMicrovmWithItClosesCleanly() throws Exception {
        Path sysfs = device();
        TestGuests.assumeKvm();
        try (VfioPlatformBackend backend = VfioPlatformBackend.open(sysfs)) {
            assertThat(backend.regions()).isNotEmpty();
            System.out.println("[vfio host test] " + backend.name() + " " + backend.compatible() + ": " + backend.regions()
                    + ", " + backend.irqs());
        }
        int irq = Integer.parseInt(System.getenv().getOrDefault("KINDLING_VFIO_PLATFORM_IRQ", "10"));
        HostResources before = HostResources.now();
        for (int i = 0; i < 20; i++) {
            // a freestanding guest: no device tree (a host device without one has no compatible to give)
            try (Microvm vm = Microvm.builder().memoryMib(64).kernel(TestGuests.elf("hello")).deviceTree(OnOffAuto.OFF)
                    .vfioPlatform(sysfs, 0xc000_0000L, irq, VfioPlatformOptions.defaults()).build()) {
                assertThat(vm.deviceErrors()).isEmpty();
            }
        }
        HostResources.now().assertNothingLeftSince(before);
    }
}
