package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

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

    @Test
    void drivesAreFirecrackersAndTheRootDeviceComesFirst() throws Exception {
        JsonConfig c = JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "/k"},
                 "drives": [{"drive_id": "data", "path_on_host": "/d.img", "is_root_device": false},
                            {"drive_id": "rootfs", "path_on_host": "/r.img", "is_root_device": true, "is_read_only": true}]}""",
                "d.json");
        assertThat(c.drives()).containsExactly(new JsonConfig.Drive("data", "/d.img", false, null),
                new JsonConfig.Drive("rootfs", "/r.img", true, true));
        assertThat(c.drives().getFirst().readOnly()).isFalse();
        assertThat(JsonConfig.parse("{\"boot-source\": {\"kernel_image_path\": \"/k\"}}", "e.json").drives()).isEmpty();
    }

    @Test
    void theRootDriveIsVdaAndAddsRoot(@TempDir Path tmp) throws Exception {
        Path k = Files.write(tmp.resolve("k"), new byte[] {0x7f, 'E', 'L', 'F', 0, 0, 0, 0});
        Path data = Files.write(tmp.resolve("data.img"), new byte[4096]);
        Path root = Files.write(tmp.resolve("root.img"), new byte[4096]);
        JsonConfig c = JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "%s", "boot_args": "console=hvc0"},
                 "drives": [{"drive_id": "data", "path_on_host": "%s", "is_root_device": false},
                            {"drive_id": "rootfs", "path_on_host": "%s", "is_root_device": true, "is_read_only": true}]}"""
                .formatted(k, data, root), "r.json");
        assertThat(c.applyTo(Microvm.builder()).effectiveCmdline()).isEqualTo("console=hvc0"
                + " virtio_mmio.device=512@0xd0000000:5 virtio_mmio.device=512@0xd0000200:6 root=/dev/vda ro");
    }

    @Test
    void badDrivesNameTheDrivesField() {
        String head = "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": ";
        assertThat(drivesError(head + "[{\"drive_id\": \"a\", \"path_on_host\": \"/a\", \"is_root_device\": false, \"cache_type\": \"Unsafe\"}]}"))
                .hasMessage("f.json: unknown field 'drives.[0].cache_type'");
        assertThat(drivesError(head + "[{\"drive_id\": \"a\", \"is_root_device\": false}]}"))
                .hasMessageContaining("path_on_host");
        assertThat(drivesError(head + "[{\"drive_id\": \"a\", \"path_on_host\": \"/a\"}]}"))
                .hasMessageContaining("is_root_device");
        assertThat(drivesError(head + "[{\"drive_id\": \" \", \"path_on_host\": \"/a\", \"is_root_device\": false}]}"))
                .hasMessage("f.json: field 'drives[0].drive_id' must name the drive");
        assertThat(drivesError(head + "[{\"drive_id\": \"a\", \"path_on_host\": \"\", \"is_root_device\": false}]}"))
                .hasMessage("f.json: field 'drives[0].path_on_host' must name an image");
        assertThat(drivesError(head + "[{\"drive_id\": \"a\", \"path_on_host\": \"/a\", \"is_root_device\": false},"
                + " {\"drive_id\": \"a\", \"path_on_host\": \"/b\", \"is_root_device\": false}]}"))
                .hasMessage("f.json: field 'drives[1].drive_id': drive id 'a' is taken by drives[0]");
        assertThat(drivesError(head + "[{\"drive_id\": \"a\", \"path_on_host\": \"/a\", \"is_root_device\": true},"
                + " {\"drive_id\": \"b\", \"path_on_host\": \"/b\", \"is_root_device\": true}]}"))
                .hasMessage("f.json: field 'drives[1].is_root_device': drives[0] is the root device already; there can be one");
        assertThat(drivesError(head + "[null]}")).hasMessage("f.json: field 'drives[0]' must be a drive, got null");
        assertThat(drivesError(head + "{\"drive_id\": \"a\"}}")).hasMessageContaining("drives");
    }

    private static ConfigException drivesError(String json) {
        ConfigException e = catchThrowableOfType(ConfigException.class, () -> JsonConfig.parse(json, "f.json"));
        assertThat(e).as(json).isNotNull();
        assertThat(e.field()).as(e.getMessage()).isEqualTo("drives");
        return e;
    }
}
