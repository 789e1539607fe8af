package dev.kindling.devices.vfio;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class VfioPlatformBackendCompatibleTest {
    @TempDir
    Path sysfs;

    @Test
    void compatibleComesFromTheHostsDeviceTreeNodeNulSeparated() throws Exception {
        Path device = Files.createDirectories(sysfs.resolve("fff51000.ethernet"));
        assertThat(VfioPlatformBackend.compatibleOf(device)).as("an ACPI host's device: no of_node").isEmpty();
        Files.createDirectories(device.resolve("of_node"));
        Files.write(device.resolve("of_node/compatible"),
                "amd,xgbe-seattle-v1a\0snps,dwc-xlgmac\0".getBytes(StandardCharsets.US_ASCII));
        assertThat(VfioPlatformBackend.compatibleOf(device)).isEqualTo(List.of("amd,xgbe-seattle-v1a", "snps,dwc-xlgmac"));
    }
}
