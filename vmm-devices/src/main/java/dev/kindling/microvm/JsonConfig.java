package dev.kindling.microvm;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Collectors;

/**
 * A Firecracker-style JSON machine configuration: {@code boot-source} (kernel_image_path, boot_args,
 * initrd_path) and {@code machine-config} (vcpu_count, mem_size_mib). Unknown sections and fields are
 * rejected by name, as Firecracker does.
 */
public record JsonConfig(
        @JsonProperty(value = "boot-source", required = true) BootSource bootSource,
        @JsonProperty("machine-config") MachineConfig machineConfig) {

    public record BootSource(
            @JsonProperty(value = "kernel_image_path", required = true) String kernelImagePath,
            @JsonProperty("boot_args") String bootArgs,
            @JsonProperty("initrd_path") String initrdPath) {}

    public record MachineConfig(
            @JsonProperty(value = "vcpu_count", required = true) Integer vcpuCount,
            @JsonProperty(value = "mem_size_mib", required = true) Integer memSizeMib) {}

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
            throw new ConfigException("config", source + ": unknown field '" + path(e) + "'");
        } catch (JsonMappingException e) {
            String where = path(e);
            throw new ConfigException("config", source + ": " + (where.isEmpty() ? "" : "field '" + where + "': ")
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
    }

    /** Applies this configuration to {@code builder}: kernel, command line, initrd, vCPUs and memory. */
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
        return builder;
    }
}
