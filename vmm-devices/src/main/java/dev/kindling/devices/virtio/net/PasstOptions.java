package dev.kindling.devices.virtio.net;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * How to reach passt. With {@link #socket()} Kindling connects to a passt already listening there;
 * otherwise it starts {@code passt} (found on PATH) listening on a socket of its own, with the guest
 * address, prefix and gateway given here (passt's defaults, copied from the host's default-route
 * interface, when empty), DNS offered or not, and {@code extraArguments} appended. passt maps the
 * gateway's address to the host's loopback, so a guest reaches host services at the gateway address.
 */
public record PasstOptions(Optional<Path> socket, Optional<String> address, int prefixLength, Optional<String> gateway,
        boolean offerDns, List<String> extraArguments) {
    public PasstOptions {
        Objects.requireNonNull(socket, "socket");
        Objects.requireNonNull(address, "address");
        Objects.requireNonNull(gateway, "gateway");
        extraArguments = List.copyOf(extraArguments);
        if (prefixLength < 0 || prefixLength > 32) {
            throw new IllegalArgumentException("passt prefix length " + prefixLength + " is not in 0..32 (0: passt's default)");
        }
    }

    /** Start passt with its defaults (addresses from the host; DNS from /etc/resolv.conf). */
    public static PasstOptions defaults() {
        return new PasstOptions(Optional.empty(), Optional.empty(), 0, Optional.empty(), true, List.of());
    }

    /** Connect to a passt listening on {@code socket} (started by the user, as for QEMU's {@code -netdev stream}). */
    public static PasstOptions connectTo(Path socket) {
        return new PasstOptions(Optional.of(socket), Optional.empty(), 0, Optional.empty(), true, List.of());
    }

    /** The guest's IPv4 address and prefix length, and its gateway (which maps to the host's loopback). */
    public PasstOptions withAddress(String address, int prefixLength, String gateway) {
        return new PasstOptions(socket, Optional.of(address), prefixLength, Optional.of(gateway), offerDns, extraArguments);
    }

    /** Whether passt offers the guest DNS servers (off: {@code --dns none --no-dhcp-dns --no-dhcp-search}, no outside resolver). */
    public PasstOptions withDns(boolean offer) {
        return new PasstOptions(socket, address, prefixLength, gateway, offer, extraArguments);
    }

    public PasstOptions withExtraArguments(List<String> arguments) {
        return new PasstOptions(socket, address, prefixLength, gateway, offerDns, arguments);
    }
}
