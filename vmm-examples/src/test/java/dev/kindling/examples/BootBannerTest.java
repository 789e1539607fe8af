package dev.kindling.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@link BootBanner}: one boot of the built guest, whose banner is the one in its vmlinux. */
class BootBannerTest {
    @Test
    @Timeout(600)
    void printsTheBannerOfTheKernelItBooted() throws Exception {
        Path guest = GuestDir.locate();
        String banner = BootBanner.banner(guest, Duration.ofMinutes(8));
        assertThat(banner).startsWith("Linux version 6.1.");
        // the kernel's linux_banner string, as built into the image it booted
        String image = new String(Files.readAllBytes(guest.resolve("vmlinux")), StandardCharsets.ISO_8859_1);
        assertThat(image).contains(banner.strip());
    }
}
