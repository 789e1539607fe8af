/** virtio-rng: the guest's entropy source, fed from a {@link java.security.SecureRandom}, optionally rate-limited. */
package dev.kindling.devices.virtio.rng;
