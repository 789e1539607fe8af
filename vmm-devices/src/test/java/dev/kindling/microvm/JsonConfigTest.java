package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class JsonConfigTest {
    @Test
    void readsFirecrackerStyleSections() {
        JsonConfig c = JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "/k/vmlinux", "boot_args": "console=ttyS0", "initrd_path": "/k/initrd"},
                 "machine-config": {"vcpu_count": 2, "mem_size_mib": 256}}""", "test.json");
        assertThat(c.bootSource().kernelImagePath()).isEqualTo("/k/vmlinux");
        assertThat(c.bootSource().bootArgs()).isEqualTo("console=ttyS0");
        assertThat(c.bootSource().initrdPath()).isEqualTo("/k/initrd");
        assertThat(c.machineConfig().vcpuCount()).isEqualTo(2);
        assertThat(c.machineConfig().memSizeMib()).isEqualTo(256);
    }

    @Test
    void unknownFieldsAreRejectedByName() {
        assertThatThrownBy(() -> JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "/k", "kernel_args": "x"}}""", "a.json"))
                .isInstanceOf(ConfigException.class).hasMessage("a.json: unknown field 'boot-source.kernel_args'");
        assertThatThrownBy(() -> JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "/k"}, "drivez": []}""", "a.json"))
                .hasMessage("a.json: unknown field 'drivez'");
    }

    @Test
    void invalidValuesNameTheField() {
        assertThatThrownBy(() -> JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "/k"}, "machine-config": {"vcpu_count": "two", "mem_size_mib": 1}}""", "b.json"))
                .isInstanceOf(ConfigException.class).hasMessageStartingWith("b.json: field 'machine-config.vcpu_count'");
        assertThatThrownBy(() -> JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "/k"}, "machine-config": {"vcpu_count": 0, "mem_size_mib": 64}}""", "b.json"))
                .hasMessage("b.json: field 'machine-config.vcpu_count' must be at least 1, got 0");
        assertThatThrownBy(() -> JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "/k"}, "machine-config": {"vcpu_count": 1, "mem_size_mib": -5}}""", "b.json"))
                .hasMessage("b.json: field 'machine-config.mem_size_mib' must be at least 1, got -5");
        assertThatThrownBy(() -> JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "/k"}, "machine-config": {"vcpu_count": 1.5, "mem_size_mib": 64}}""", "b.json"))
                .hasMessageStartingWith("b.json: field 'machine-config.vcpu_count'");
    }

    @Test
    void missingRequiredFieldsAndBrokenJsonAreReported() {
        assertThatThrownBy(() -> JsonConfig.parse("{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64}}", "c.json"))
                .isInstanceOf(ConfigException.class).hasMessageContaining("boot-source");
        assertThatThrownBy(() -> JsonConfig.parse("{\"boot-source\": {}}", "c.json"))
                .hasMessageContaining("kernel_image_path");
        assertThatThrownBy(() -> JsonConfig.parse("{\"boot-source\": {\"kernel_image_path\": \"/k\"}", "c.json"))
                .hasMessageStartingWith("c.json: not valid JSON");
        assertThatThrownBy(() -> JsonConfig.parse("", "c.json")).isInstanceOf(ConfigException.class);
    }
}
