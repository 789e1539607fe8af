package dev.kindling.microvm;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * A Firecracker-style JSON machine configuration: {@code boot-source} (kernel_image_path, boot_args,
 * initrd_path), {@code machine-config} (vcpu_count, mem_size_mib) and {@code drives} (virtio-blk
 * disks: drive_id, path_on_host, is_root_device, is_read_only). Unknown sections and fields are
 * rejected by name, as Firecracker does.
 */
public record JsonConfig(
        @JsonProperty(value = "boot-source", required = true) BootSource bootSource,
        @JsonProperty("machine-config") MachineConfig machineConfig,
        @JsonProperty("drives") List<Drive> drives) {

    public JsonConfig {
        drives = drives == null ? List.of() : drives;
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

    private static final ObjectMapper MAPPER = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .disable(DeserializationFeature.ACCEPT_FLOAT_AS_INT);

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

    /** The setting at fault: {@code "drives"} for a disk, else {@code "config"}. */
    private static String field(JsonMappingException e) {
        return !e.getPath().isEmpty() && "drives".equals(e.getPath().getFirst().getFieldName()) ? "drives" : "config";
    }

    private static String path(JsonMappingException e) {
        return e.getPath().stream()
                .map(r -> r.getFieldName() != null ? r.getFieldName() : "[" + r.getIndex() + "]")
                .collect(Collectors.joining("."));
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
    }

    /**
     * Applies this configuration to {@code builder}: kernel, command line, initrd, vCPUs, memory, and
     * the drives as virtio-blk disks, the root device first, then the others in their order.
     */
    public MicrovmBuilder applyTo(MicrovmBuilder builder) {
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
        return builder;
    }
}
