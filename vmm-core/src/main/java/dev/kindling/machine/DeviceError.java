package dev.kindling.machine;

import java.util.Objects;

/**
 * A fatal error a device reported through {@link dev.kindling.device.DeviceContext#reportFatal}: the
 * device's name in the machine, what failed, and why (may be null). The guest and the VMM carried on.
 */
public record DeviceError(String device, String message, Throwable cause) {
    public DeviceError {
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(message, "message");
    }
}
