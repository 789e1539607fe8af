package dev.kindling.devices.vfio;

import java.time.Duration;
import java.util.List;
import java.util.Objects;

/**
 * QEMU's vfio-platform options: {@code noMmap} ({@code x-no-mmap}) traps every region access
 * instead of mapping mmap-able regions into the guest; {@code mmapTimeout} ({@code mmap-timeout-ms},
 * 1100 ms) is how long the slow interrupt path keeps the mappings off after the guest acknowledged
 * an interrupt; {@code irqfd} ({@code x-irqfd}, on) lets interrupts take the hypervisor's paths
 * (off: every level interrupt goes through the slow path, which turns mappings off while it is
 * pending so that the guest's acknowledging access traps). {@code compatible}, Kindling's own,
 * names the device in the guest's device tree (most specific first); empty: the host's device tree
 * node's {@code compatible} ({@link PlatformDeviceBackend#compatible()}).
 */
public record VfioPlatformOptions(boolean noMmap, Duration mmapTimeout, boolean irqfd, List<String> compatible) {
    public static final Duration DEFAULT_MMAP_TIMEOUT = Duration.ofMillis(1100);

    public VfioPlatformOptions {
        Objects.requireNonNull(mmapTimeout, "mmapTimeout");
        compatible = List.copyOf(compatible);
        if (compatible.stream().anyMatch(c -> c.isEmpty() || c.indexOf('\0') >= 0)) {
            throw new IllegalArgumentException("compatible strings must be non-empty, without NUL: " + compatible);
        }
        if (mmapTimeout.isNegative()) {
            throw new IllegalArgumentException("mmap-timeout-ms must not be negative: " + mmapTimeout.toMillis());
        }
    }

    public static VfioPlatformOptions defaults() {
        return new VfioPlatformOptions(false, DEFAULT_MMAP_TIMEOUT, true, List.of());
    }

    public VfioPlatformOptions withNoMmap(boolean on) {
        return new VfioPlatformOptions(on, mmapTimeout, irqfd, compatible);
    }

    public VfioPlatformOptions withMmapTimeout(Duration timeout) {
        return new VfioPlatformOptions(noMmap, timeout, irqfd, compatible);
    }

    public VfioPlatformOptions withIrqfd(boolean on) {
        return new VfioPlatformOptions(noMmap, mmapTimeout, on, compatible);
    }

    /** The device's {@code compatible} in the guest's device tree, in place of the host's. */
    public VfioPlatformOptions withCompatible(String... strings) {
        return new VfioPlatformOptions(noMmap, mmapTimeout, irqfd, List.of(strings));
    }
}
