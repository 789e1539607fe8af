package dev.kindling.devices.virtio.net;

import java.util.Objects;
import java.util.Optional;
import java.util.function.Supplier;

/**
 * A virtio-net interface of a microVM, as configured: an id (Firecracker's {@code iface_id}), the
 * guest's MAC address (random if not given) and the backend the device is opened with when the VM
 * is built.
 */
public record NetworkInterface(String id, Optional<MacAddress> mac, Backend backend) {
    public NetworkInterface {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(mac, "mac");
        Objects.requireNonNull(backend, "backend");
        if (id.isBlank()) {
            throw new IllegalArgumentException("network interface id must not be blank");
        }
    }

    /** How the backend is made. */
    public sealed interface Backend {
        /** A tap device on the host ({@code host_dev_name}), made by the user's set-up or created if absent. */
        record Tap(String hostDevName) implements Backend {
            public Tap {
                Objects.requireNonNull(hostDevName, "hostDevName");
            }
        }

        /** The passt daemon: started by Kindling, or already listening on a Unix socket. */
        record Passt(PasstOptions options) implements Backend {
            public Passt {
                Objects.requireNonNull(options, "options");
            }
        }

        /** A port of an in-process switch. */
        record Switch(NetSwitch netSwitch) implements Backend {
            public Switch {
                Objects.requireNonNull(netSwitch, "netSwitch");
            }
        }

        /** A backend of the caller's, made at build time and closed with the VM. */
        record Custom(Supplier<NetBackend> factory) implements Backend {
            public Custom {
                Objects.requireNonNull(factory, "factory");
            }
        }
    }

    public static NetworkInterface tap(String id, String hostDevName) {
        return new NetworkInterface(id, Optional.empty(), new Backend.Tap(hostDevName));
    }

    public static NetworkInterface passt(String id) {
        return passt(id, PasstOptions.defaults());
    }

    public static NetworkInterface passt(String id, PasstOptions options) {
        return new NetworkInterface(id, Optional.empty(), new Backend.Passt(options));
    }

    public static NetworkInterface onSwitch(String id, NetSwitch netSwitch) {
        return new NetworkInterface(id, Optional.empty(), new Backend.Switch(netSwitch));
    }

    public static NetworkInterface custom(String id, Supplier<NetBackend> factory) {
        return new NetworkInterface(id, Optional.empty(), new Backend.Custom(factory));
    }

    public NetworkInterface withMac(MacAddress mac) {
        return new NetworkInterface(id, Optional.of(mac), backend);
    }
}
