package dev.kindling.microvm;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.cfg.CoercionAction;
import com.fasterxml.jackson.databind.cfg.CoercionInputShape;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.type.LogicalType;
import dev.kindling.devices.virtio.net.MacAddress;
import dev.kindling.devices.virtio.net.NetSwitch;
import dev.kindling.devices.virtio.net.NetworkInterface;
import dev.kindling.devices.virtio.net.PasstOptions;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;

/**
 * A Firecracker-style JSON machine configuration: {@code boot-source} (kernel_image_path, boot_args,
 * initrd_path), {@code machine-config} (vcpu_count, mem_size_mib), {@code drives} (virtio-blk
 * disks: drive_id, path_on_host, is_root_device, is_read_only), {@code vsock} (guest_cid, uds_path;
 * Firecracker's deprecated vsock_id is accepted and ignored) and {@code network-interfaces}
 * (iface_id, host_dev_name, guest_mac; see {@link NetInterface} for Kindling's other backends).
 * Unknown sections and fields are rejected by name, and values must have their JSON type (no
 * {@code "2"} for 2), as Firecracker does.
 */
public record JsonConfig(
        @JsonProperty(value = "boot-source", required = true) BootSource bootSource,
        @JsonProperty("machine-config") MachineConfig machineConfig,
        @JsonProperty("drives") List<Drive> drives,
        @JsonProperty("vsock") VsockConfig vsock,
        @JsonProperty("network-interfaces") List<NetInterface> networkInterfaces) {

    public JsonConfig {
        drives = drives == null ? List.of() : drives;
        networkInterfaces = networkInterfaces == null ? List.of() : networkInterfaces;
    }

    public record BootSource(
            @JsonProperty(value = "kernel_image_path", required = true) String kernelImagePath,
            @JsonProperty("boot_args") String bootArgs,
            @JsonProperty("initrd_path") String initrdPath) {}

    public record MachineConfig(
            @JsonProperty(value = "vcpu_count", required = true) Integer vcpuCount,
            @JsonProperty(value = "mem_size_mib", required = true) Integer memSizeMib) {}

    /**
     * A disk, as Firecracker's: the root device is attached first (so it is {@code /dev/vda}) and
     * adds {@code root=/dev/vda} with {@code ro} or {@code rw}; {@code is_read_only} is false when absent.
     */
    public record Drive(
            @JsonProperty(value = "drive_id", required = true) String driveId,
            @JsonProperty(value = "path_on_host", required = true) String pathOnHost,
            @JsonProperty(value = "is_root_device", required = true) Boolean isRootDevice,
            @JsonProperty("is_read_only") Boolean isReadOnly) {

        public boolean readOnly() {
            return Boolean.TRUE.equals(isReadOnly);
        }
    }

    /**
     * The vsock device, as Firecracker's: guest_cid (3 to 2^32 - 2) and uds_path, where host clients
     * speak Firecracker's Unix-socket protocol (it must not exist yet). Firecracker's deprecated
     * {@code vsock_id} is accepted, as its own example files still have it, and ignored.
     */
    public record VsockConfig(
            @JsonProperty("vsock_id") String vsockId,
            @JsonProperty(value = "guest_cid", required = true) Long guestCid,
            @JsonProperty(value = "uds_path", required = true) String udsPath) {}

    /**
     * A virtio-net interface, as Firecracker's: iface_id (unique), host_dev_name (a tap device) and
     * guest_mac (random when absent). Kindling also offers backends of its own, each chosen by its
     * own field in place of host_dev_name, so that exactly one of the three is given:
     * {@code "passt": {}} (Kindling starts passt) or {@code "passt": {"socket": PATH}} (a passt
     * already listening there), and {@code "switch": NAME} (a port of the in-process switch the
     * program names so; see {@link #applyTo(MicrovmBuilder, Function)}).
     */
    public record NetInterface(
            @JsonProperty(value = "iface_id", required = true) String ifaceId,
            @JsonProperty("host_dev_name") String hostDevName,
            @JsonProperty("guest_mac") String guestMac,
            @JsonProperty("passt") Passt passt,
            @JsonProperty("switch") String switchName) {

        /** The parsed guest_mac; empty when absent. */
        public Optional<MacAddress> mac() {
            return guestMac == null ? Optional.empty() : Optional.of(MacAddress.parse(guestMac));
        }
    }

    /** Kindling's passt backend: {@code socket} names a passt already listening; absent, Kindling starts one. */
    public record Passt(@JsonProperty("socket") String socket) {}

    private static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .disable(DeserializationFeature.ACCEPT_FLOAT_AS_INT)
            .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
            // ALLOW_COERCION_OF_SCALARS leaves numbers and booleans turning into strings
            .withCoercionConfig(LogicalType.Textual, c -> c
                    .setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
                    .setCoercion(CoercionInputShape.Float, CoercionAction.Fail)
                    .setCoercion(CoercionInputShape.Boolean, CoercionAction.Fail))
            .build();

    /** The sections whose errors are named after them rather than {@code "config"}. */
    private static final Set<String> SECTION_FIELDS = Set.of("drives", "vsock", "network-interfaces");

    /** Parses {@code json}; {@code source} names it in errors. */
    public static JsonConfig parse(String json, String source) {
        JsonConfig c;
        try {
            c = MAPPER.readValue(json, JsonConfig.class);
        } catch (UnrecognizedPropertyException e) {
            throw new ConfigException(field(e), source + ": unknown field '" + path(e) + "'");
        } catch (JsonMappingException e) {
            String where = path(e);
            throw new ConfigException(field(e), source + ": " + (where.isEmpty() ? "" : "field '" + where + "': ")
                    + e.getOriginalMessage().lines().findFirst().orElse("invalid"), e);
        } catch (JsonProcessingException e) {
            throw new ConfigException("config", source + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (c == null) {
            throw new ConfigException("config", source + ": empty configuration");
        }
        c.validate(source);
        return c;
    }

    public static JsonConfig read(Path file) {
        try {
            return parse(Files.readString(file), file.toString());
        } catch (IOException e) {
            throw new ConfigException("config", "cannot read configuration " + file + ": " + e.getMessage(), e);
        }
    }

    private static void add(MicrovmBuilder builder, Drive d) {
        builder.jsonDrive(d.driveId(), Path.of(d.pathOnHost()), d.readOnly(), d.isRootDevice());
    }

    /** The setting at fault: the section for a disk, the vsock device or an interface, else {@code "config"}. */
    private static String field(JsonMappingException e) {
        String first = e.getPath().isEmpty() ? null : e.getPath().getFirst().getFieldName();
        return first != null && SECTION_FIELDS.contains(first) ? first : "config";
    }

    /** {@code drives[0].path_on_host}: the place in the file, as the checks' messages name it. */
    private static String path(JsonMappingException e) {
        StringBuilder p = new StringBuilder();
        for (JsonMappingException.Reference r : e.getPath()) {
            if (r.getFieldName() != null) {
                p.append(p.isEmpty() ? "" : ".").append(r.getFieldName());
            } else {
                p.append('[').append(r.getIndex()).append(']');
            }
        }
        return p.toString();
    }

    private void validate(String source) {
        if (bootSource.kernelImagePath() == null || bootSource.kernelImagePath().isBlank()) {
            throw new ConfigException("config", source + ": field 'boot-source.kernel_image_path' must name a kernel image");
        }
        if (machineConfig != null) {
            if (machineConfig.vcpuCount() < 1) {
                throw new ConfigException("config", source + ": field 'machine-config.vcpu_count' must be at least 1, got "
                        + machineConfig.vcpuCount());
            }
            if (machineConfig.memSizeMib() < 1) {
                throw new ConfigException("config", source + ": field 'machine-config.mem_size_mib' must be at least 1, got "
                        + machineConfig.memSizeMib());
            }
        }
        Map<String, Integer> ids = new HashMap<>();
        Integer root = null;
        for (int i = 0; i < drives.size(); i++) {
            Drive d = drives.get(i);
            String at = source + ": field 'drives[" + i + "]";
            if (d == null) {
                throw new ConfigException("drives", at + "' must be a drive, got null");
            }
            if (d.driveId() == null || d.driveId().isBlank()) {
                throw new ConfigException("drives", at + ".drive_id' must name the drive");
            }
            if (d.pathOnHost() == null || d.pathOnHost().isBlank()) {
                throw new ConfigException("drives", at + ".path_on_host' must name an image");
            }
            try {
                Path.of(d.pathOnHost());
            } catch (InvalidPathException e) {
                throw new ConfigException("drives", at + ".path_on_host' is not a path: " + e.getMessage(), e);
            }
            if (d.isRootDevice() == null) {
                throw new ConfigException("drives", at + ".is_root_device' must be true or false");
            }
            Integer twin = ids.putIfAbsent(d.driveId(), i);
            if (twin != null) {
                throw new ConfigException("drives", at + ".drive_id': drive id '" + d.driveId()
                        + "' is taken by drives[" + twin + "]");
            }
            if (d.isRootDevice()) {
                if (root != null) {
                    throw new ConfigException("drives", at + ".is_root_device': drives[" + root
                            + "] is the root device already; there can be one");
                }
                root = i;
            }
        }
        if (vsock != null) {
            validateVsock(source);
        }
        validateInterfaces(source);
    }

    private void validateVsock(String source) {
        String at = source + ": field 'vsock.";
        if (vsock.guestCid() == null) {
            throw new ConfigException("vsock", at + "guest_cid' must be a number");
        }
        if (vsock.guestCid() < 3 || vsock.guestCid() > 0xFFFF_FFFEL) {
            throw new ConfigException("vsock", at + "guest_cid' must be 3 to 4294967294 (0, 1, 2 and 2^32 - 1"
                    + " are reserved), got " + vsock.guestCid());
        }
        if (vsock.udsPath() == null || vsock.udsPath().isBlank()) {
            throw new ConfigException("vsock", at + "uds_path' must name a Unix socket to listen on");
        }
        try {
            Path.of(vsock.udsPath());
        } catch (InvalidPathException e) {
            throw new ConfigException("vsock", at + "uds_path' is not a path: " + e.getMessage(), e);
        }
    }

    private void validateInterfaces(String source) {
        Map<String, Integer> ids = new HashMap<>();
        for (int i = 0; i < networkInterfaces.size(); i++) {
            NetInterface n = networkInterfaces.get(i);
            String at = source + ": field 'network-interfaces[" + i + "]";
            if (n == null) {
                throw new ConfigException("network-interfaces", at + "' must be an interface, got null");
            }
            if (n.ifaceId() == null || n.ifaceId().isBlank()) {
                throw new ConfigException("network-interfaces", at + ".iface_id' must name the interface");
            }
            Integer twin = ids.putIfAbsent(n.ifaceId(), i);
            if (twin != null) {
                throw new ConfigException("network-interfaces", at + ".iface_id': interface id '" + n.ifaceId()
                        + "' is taken by network-interfaces[" + twin + "]");
            }
            int backends = (n.hostDevName() != null ? 1 : 0) + (n.passt() != null ? 1 : 0) + (n.switchName() != null ? 1 : 0);
            if (backends == 0) {
                throw new ConfigException("network-interfaces", at + ".host_dev_name' must name a tap device"
                        + " (or give Kindling's \"passt\" or \"switch\" instead)");
            }
            if (backends > 1) {
                throw new ConfigException("network-interfaces", at + "' has more than one of host_dev_name, passt and"
                        + " switch; give one");
            }
            if (n.hostDevName() != null && n.hostDevName().isBlank()) {
                throw new ConfigException("network-interfaces", at + ".host_dev_name' must name a tap device");
            }
            if (n.switchName() != null && n.switchName().isBlank()) {
                throw new ConfigException("network-interfaces", at + ".switch' must name a switch");
            }
            if (n.passt() != null && n.passt().socket() != null) {
                try {
                    if (n.passt().socket().isBlank()) {
                        throw new InvalidPathException(n.passt().socket(), "empty");
                    }
                    Path.of(n.passt().socket());
                } catch (InvalidPathException e) {
                    throw new ConfigException("network-interfaces", at + ".passt.socket' is not a path: "
                            + e.getMessage(), e);
                }
            }
            try {
                n.mac();
            } catch (IllegalArgumentException e) {
                throw new ConfigException("network-interfaces", at + ".guest_mac': " + e.getMessage(), e);
            }
        }
    }

    /**
     * Applies this configuration to {@code builder}: kernel, command line, initrd, vCPUs, memory, the
     * drives as virtio-blk disks (the root device first, then the others in their order), then the
     * network interfaces in their order ({@code eth0}, {@code eth1}, ...), then the vsock device, as
     * Firecracker attaches them. An interface on a {@code "switch"} needs
     * {@link #applyTo(MicrovmBuilder, Function)}.
     */
    public MicrovmBuilder applyTo(MicrovmBuilder builder) {
        return applyTo(builder, name -> {
            throw new ConfigException("network-interfaces", "switch '" + name + "': this program offers no in-process"
                    + " switches (JsonConfig.applyTo(builder, switches) does)");
        });
    }

    /**
     * As {@link #applyTo(MicrovmBuilder)}, with {@code switches} giving the in-process switch each
     * {@code "switch"} name stands for. The switches stay the caller's: it closes them after the VMs.
     */
    public MicrovmBuilder applyTo(MicrovmBuilder builder, Function<String, NetSwitch> switches) {
        builder.kernel(Path.of(bootSource.kernelImagePath()));
        if (bootSource.bootArgs() != null) {
            builder.cmdline(bootSource.bootArgs());
        }
        if (bootSource.initrdPath() != null) {
            builder.initrd(Path.of(bootSource.initrdPath()));
        }
        if (machineConfig != null) {
            builder.vcpus(machineConfig.vcpuCount()).memoryMib(machineConfig.memSizeMib());
        }
        drives.stream().filter(Drive::isRootDevice).forEach(d -> add(builder, d));
        drives.stream().filter(d -> !d.isRootDevice()).forEach(d -> add(builder, d));
        for (NetInterface n : networkInterfaces) {
            builder.jsonNet(networkInterface(n, switches));
        }
        if (vsock != null) {
            builder.vsock(vsock.guestCid(), Path.of(vsock.udsPath()));
        }
        return builder;
    }

    private static NetworkInterface networkInterface(NetInterface n, Function<String, NetSwitch> switches) {
        NetworkInterface iface;
        if (n.hostDevName() != null) {
            iface = NetworkInterface.tap(n.ifaceId(), n.hostDevName());
        } else if (n.passt() != null) {
            iface = NetworkInterface.passt(n.ifaceId(), n.passt().socket() == null ? PasstOptions.defaults()
                    : PasstOptions.connectTo(Path.of(n.passt().socket())));
        } else {
            NetSwitch netSwitch = switches.apply(n.switchName());
            if (netSwitch == null) {
                throw new ConfigException("network-interfaces", "network interface '" + n.ifaceId()
                        + "': there is no switch '" + n.switchName() + "'");
            }
            iface = NetworkInterface.onSwitch(n.ifaceId(), netSwitch);
        }
        return n.mac().map(iface::withMac).orElse(iface);
    }
}
