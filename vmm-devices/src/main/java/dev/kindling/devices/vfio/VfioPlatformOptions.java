package dev.kindling.devices.vfio;

import java.time.Duration;
import java.util.Objects;

/**
 * QEMU's vfio-platform options: {@code noMmap} ({@code x-no-mmap}) traps every region access
 * instead of mapping mmap-able regions into the guest; {@code mmapTimeout} ({@code mmap-timeout-ms},
 * 1100 ms) is how long the slow interrupt path keeps the mappings off after the guest acknowledged
 * an interrupt; {@code irqfd} ({@code x-irqfd}, on) lets interrupts take the hypervisor's paths
 * (off: every level interrupt goes through the slow path, which turns mappings off while it is
 * pending so that the guest's acknowledging access traps).
 */
public record VfioPlatformOptions(boolean noMmap, Duration mmapTimeout, boolean irqfd) {
    public static final Duration DEFAULT_MMAP_TIMEOUT = Duration.ofMillis(1100);

    public VfioPlatformOptions {
        Objects.requireNonNull(mmapTimeout, "mmapTimeout");
        if (mmapTimeout.isNegative()) {
            throw new IllegalArgumentException("mmap-timeout-ms must not be negative: " + mmapTimeout.toMillis());
        }
    }

    public static VfioPlatformOptions defaults() {
        return new VfioPlatformOptions(false, DEFAULT_MMAP_TIMEOUT, true);
    }

    public VfioPlatformOptions withNoMmap(boolean on) {
        return new VfioPlatformOptions(on, mmapTimeout, irqfd);
    }

    public VfioPlatformOptions withMmapTimeout(Duration timeout) {
        return new VfioPlatformOptions(noMmap, timeout, irqfd);
    }

    public VfioPlatformOptions withIrqfd(boolean on) {
        return new VfioPlatformOptions(noMmap, mmapTimeout, on);
    }
}
