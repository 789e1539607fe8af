package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.kindling.devices.virtio.net.MacAddress;
import dev.kindling.devices.virtio.net.NetSwitch;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
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
                .hasMessage("f.json: unknown field 'drives[0].cache_type'");
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
        return error(json, "drives");
    }

    private static ConfigException error(String json, String field) {
        ConfigException e = catchThrowableOfType(ConfigException.class, () -> JsonConfig.parse(json, "f.json"));
        assertThat(e).as(json).isNotNull();
        assertThat(e.field()).as(e.getMessage()).isEqualTo(field);
        return e;
    }

    private static final String HEAD = "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, ";

    @Test
    void vsockIsFirecrackers() {
        JsonConfig c = JsonConfig.parse(HEAD + """
                "vsock": {"guest_cid": 3, "uds_path": "/tmp/v.sock"}}""", "v.json");
        assertThat(c.vsock()).isEqualTo(new JsonConfig.VsockConfig(null, 3L, "/tmp/v.sock"));
        // Firecracker's deprecated vsock_id, still in its example files, is taken and ignored
        assertThat(JsonConfig.parse(HEAD + """
                "vsock": {"vsock_id": "vsock0", "guest_cid": 4294967294, "uds_path": "v.sock"}}""", "v.json").vsock())
                .isEqualTo(new JsonConfig.VsockConfig("vsock0", 4294967294L, "v.sock"));
        assertThat(JsonConfig.parse(HEAD.replace(", ", "}"), "v.json").vsock()).isNull();
    }

    @Test
    void badVsockFieldsNameTheirPath() {
        assertThat(error(HEAD + "\"vsock\": {\"guest_cid\": 3}}", "vsock")).hasMessageContaining("uds_path");
        assertThat(error(HEAD + "\"vsock\": {\"uds_path\": \"/v\"}}", "vsock")).hasMessageContaining("guest_cid");
        assertThat(error(HEAD + "\"vsock\": {\"guest_cid\": 2, \"uds_path\": \"/v\"}}", "vsock"))
                .hasMessage("f.json: field 'vsock.guest_cid' must be 3 to 4294967294 (0, 1, 2 and 2^32 - 1 are reserved), got 2");
        assertThat(error(HEAD + "\"vsock\": {\"guest_cid\": 4294967295, \"uds_path\": \"/v\"}}", "vsock"))
                .hasMessageEndingWith("got 4294967295");
        assertThat(error(HEAD + "\"vsock\": {\"guest_cid\": -3, \"uds_path\": \"/v\"}}", "vsock"))
                .hasMessageEndingWith("got -3");
        assertThat(error(HEAD + "\"vsock\": {\"guest_cid\": \"3\", \"uds_path\": \"/v\"}}", "vsock"))
                .hasMessageStartingWith("f.json: field 'vsock.guest_cid'");
        assertThat(error(HEAD + "\"vsock\": {\"guest_cid\": 3.5, \"uds_path\": \"/v\"}}", "vsock"))
                .hasMessageStartingWith("f.json: field 'vsock.guest_cid'");
        assertThat(error(HEAD + "\"vsock\": {\"guest_cid\": 3, \"uds_path\": 7}}", "vsock"))
                .hasMessageStartingWith("f.json: field 'vsock.uds_path'");
        assertThat(error(HEAD + "\"vsock\": {\"guest_cid\": 3, \"uds_path\": \" \"}}", "vsock"))
                .hasMessage("f.json: field 'vsock.uds_path' must name a Unix socket to listen on");
        assertThat(error(HEAD + "\"vsock\": {\"guest_cid\": 3, \"uds_path\": \"a\\u0000b\"}}", "vsock"))
                .hasMessageStartingWith("f.json: field 'vsock.uds_path' is not a path");
        assertThat(error(HEAD + "\"vsock\": {\"guest_cid\": 3, \"uds_path\": \"/v\", \"port\": 1}}", "vsock"))
                .hasMessage("f.json: unknown field 'vsock.port'");
        assertThat(error(HEAD + "\"vsock\": [3]}", "vsock")).hasMessageStartingWith("f.json: field 'vsock'");
    }

    @Test
    void networkInterfacesAreFirecrackersWithKindlingsBackends() {
        JsonConfig c = JsonConfig.parse(HEAD + """
                "network-interfaces": [
                  {"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:AC:10:00:02"},
                  {"iface_id": "eth1", "host_dev_name": "tap1"},
                  {"iface_id": "eth2", "passt": {}},
                  {"iface_id": "eth3", "passt": {"socket": "/run/passt.sock"}, "guest_mac": "06:00:00:00:00:03"},
                  {"iface_id": "eth4", "switch": "lan"}]}""", "n.json");
        assertThat(c.networkInterfaces()).containsExactly(
                new JsonConfig.NetInterface("eth0", "tap0", "06:00:AC:10:00:02", null, null),
                new JsonConfig.NetInterface("eth1", "tap1", null, null, null),
                new JsonConfig.NetInterface("eth2", null, null, new JsonConfig.Passt(null), null),
                new JsonConfig.NetInterface("eth3", null, "06:00:00:00:00:03", new JsonConfig.Passt("/run/passt.sock"), null),
                new JsonConfig.NetInterface("eth4", null, null, null, "lan"));
        assertThat(c.networkInterfaces().getFirst().mac()).contains(MacAddress.parse("06:00:ac:10:00:02"));
        assertThat(c.networkInterfaces().get(1).mac()).isEmpty();
        assertThat(JsonConfig.parse(HEAD + "\"network-interfaces\": []}", "n.json").networkInterfaces()).isEmpty();
    }

    @Test
    void badInterfacesNameTheirPath() {
        String head = HEAD + "\"network-interfaces\": ";
        assertThat(error(head + "[{\"host_dev_name\": \"tap0\"}]}", "network-interfaces")).hasMessageContaining("iface_id");
        assertThat(error(head + "[{\"iface_id\": \"\", \"host_dev_name\": \"tap0\"}]}", "network-interfaces"))
                .hasMessage("f.json: field 'network-interfaces[0].iface_id' must name the interface");
        assertThat(error(head + "[{\"iface_id\": \"eth0\"}]}", "network-interfaces"))
                .hasMessage("f.json: field 'network-interfaces[0].host_dev_name' must name a tap device"
                        + " (or give Kindling's \"passt\" or \"switch\" instead)");
        assertThat(error(head + "[{\"iface_id\": \"eth0\", \"host_dev_name\": \"\"}]}", "network-interfaces"))
                .hasMessage("f.json: field 'network-interfaces[0].host_dev_name' must name a tap device");
        assertThat(error(head + "[{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"},"
                + " {\"iface_id\": \"eth0\", \"host_dev_name\": \"tap1\"}]}", "network-interfaces"))
                .hasMessage("f.json: field 'network-interfaces[1].iface_id': interface id 'eth0' is taken by network-interfaces[0]");
        assertThat(error(head + "[{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"06:00:AC:10:00\"}]}",
                "network-interfaces"))
                .hasMessage("f.json: field 'network-interfaces[0].guest_mac': MAC address '06:00:AC:10:00' is not six octets"
                        + " like 02:00:00:00:00:01");
        assertThat(error(head + "[{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"06:00:AC:10:00:0g\"}]}",
                "network-interfaces")).hasMessageContaining("network-interfaces[0].guest_mac").hasMessageContaining("'0g'");
        assertThat(error(head + "[{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": 6}]}",
                "network-interfaces")).hasMessageStartingWith("f.json: field 'network-interfaces[0].guest_mac'");
        assertThat(error(head + "[{\"iface_id\": \"eth0\", \"host_dev_name\": 0}]}", "network-interfaces"))
                .hasMessageStartingWith("f.json: field 'network-interfaces[0].host_dev_name'");
        assertThat(error(head + "[{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"rx_rate_limiter\": {}}]}",
                "network-interfaces")).hasMessage("f.json: unknown field 'network-interfaces[0].rx_rate_limiter'");
        assertThat(error(head + "[{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"switch\": \"lan\"}]}",
                "network-interfaces"))
                .hasMessage("f.json: field 'network-interfaces[0]' has more than one of host_dev_name, passt and switch; give one");
        assertThat(error(head + "[{\"iface_id\": \"eth0\", \"passt\": {}, \"switch\": \"lan\"}]}", "network-interfaces"))
                .hasMessageContaining("more than one");
        assertThat(error(head + "[{\"iface_id\": \"eth0\", \"switch\": \" \"}]}", "network-interfaces"))
                .hasMessage("f.json: field 'network-interfaces[0].switch' must name a switch");
        assertThat(error(head + "[{\"iface_id\": \"eth0\", \"passt\": {\"socket\": \"\"}}]}", "network-interfaces"))
                .hasMessageStartingWith("f.json: field 'network-interfaces[0].passt.socket' is not a path");
        assertThat(error(head + "[{\"iface_id\": \"eth0\", \"passt\": {\"sock\": \"/p\"}}]}", "network-interfaces"))
                .hasMessage("f.json: unknown field 'network-interfaces[0].passt.sock'");
        assertThat(error(head + "[{\"iface_id\": \"eth0\", \"passt\": true}]}", "network-interfaces"))
                .hasMessageStartingWith("f.json: field 'network-interfaces[0].passt'");
        assertThat(error(head + "[null]}", "network-interfaces"))
                .hasMessage("f.json: field 'network-interfaces[0]' must be an interface, got null");
        assertThat(error(head + "{\"iface_id\": \"eth0\"}}", "network-interfaces"))
                .hasMessageStartingWith("f.json: field 'network-interfaces'");
    }

    @Test
    void interfacesAndVsockReachTheBuilderInFirecrackersOrder(@TempDir Path tmp) throws Exception {
        Path k = Files.write(tmp.resolve("k"), new byte[] {0x7f, 'E', 'L', 'F', 0, 0, 0, 0});
        Path data = Files.write(tmp.resolve("data.img"), new byte[4096]);
        JsonConfig c = JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "%s"},
                 "drives": [{"drive_id": "data", "path_on_host": "%s", "is_root_device": false}],
                 "vsock": {"guest_cid": 3, "uds_path": "%s"},
                 "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0"},
                                        {"iface_id": "eth1", "passt": {}, "guest_mac": "06:00:00:00:00:01"}]}"""
                .formatted(k, data, tmp.resolve("v.sock")), "o.json");
        // one transport each: the disk, the two interfaces, the vsock device
        assertThat(c.applyTo(Microvm.builder()).autoKernelCmdline(true).effectiveCmdline()).isEqualTo(
                "virtio_mmio.device=512@0xd0000000:5 virtio_mmio.device=512@0xd0000200:6"
                + " virtio_mmio.device=512@0xd0000400:7 virtio_mmio.device=512@0xd0000600:8");

        // the builder's checks name the JSON section and the interface
        JsonConfig twoTaps = JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "%s"},
                 "network-interfaces": [{"iface_id": "a", "host_dev_name": "tap0", "guest_mac": "06:00:00:00:00:01"},
                                        {"iface_id": "b", "host_dev_name": "tap0"}]}""".formatted(k), "t.json");
        assertThatThrownBy(() -> twoTaps.applyTo(Microvm.builder()).validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("network-interfaces"))
                .hasMessage("network interface 'b': tap tap0 is network interface 'a''s already; each interface needs a tap"
                        + " of its own");
        JsonConfig twoMacs = JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "%s"},
                 "network-interfaces": [{"iface_id": "a", "host_dev_name": "tap0", "guest_mac": "06:00:00:00:00:01"},
                                        {"iface_id": "b", "passt": {}, "guest_mac": "06:00:00:00:00:01"}]}""".formatted(k), "m.json");
        assertThatThrownBy(() -> twoMacs.applyTo(Microvm.builder()).validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("network-interfaces"))
                .hasMessage("network interface 'b': guest MAC 06:00:00:00:00:01 is network interface 'a''s already");
        JsonConfig usedSocket = JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "%s"}, "vsock": {"guest_cid": 3, "uds_path": "%s"}}"""
                .formatted(k, data), "u.json");
        assertThatThrownBy(() -> usedSocket.applyTo(Microvm.builder()).validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("vsock"))
                .hasMessageContaining("already exists");
    }

    @Test
    void aSwitchNeedsTheProgramsSwitches(@TempDir Path tmp) throws Exception {
        Path k = Files.write(tmp.resolve("k"), new byte[] {0x7f, 'E', 'L', 'F', 0, 0, 0, 0});
        JsonConfig c = JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "%s"},
                 "network-interfaces": [{"iface_id": "eth0", "switch": "lan"}]}""".formatted(k), "s.json");
        assertThatThrownBy(() -> c.applyTo(Microvm.builder()))
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("network-interfaces"))
                .hasMessageContaining("switch 'lan'").hasMessageContaining("no in-process switches");
        assertThatThrownBy(() -> c.applyTo(Microvm.builder(), name -> null))
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("network-interfaces"))
                .hasMessage("network interface 'eth0': there is no switch 'lan'");
    }

    @Test
    void aSwitchIsTheOneTheProgramNames(@TempDir Path tmp) throws Exception {
        Path k = Files.write(tmp.resolve("k"), new byte[] {0x7f, 'E', 'L', 'F', 0, 0, 0, 0});
        JsonConfig c = JsonConfig.parse("""
                {"boot-source": {"kernel_image_path": "%s"},
                 "network-interfaces": [{"iface_id": "eth0", "switch": "lan"}, {"iface_id": "eth1", "switch": "lan"}]}"""
                .formatted(k), "s.json");
        List<String> asked = new ArrayList<>();
        try (NetSwitch lan = new NetSwitch("lan")) {
            c.applyTo(Microvm.builder(), name -> {
                asked.add(name);
                return lan;
            }).validate();
        }
        assertThat(asked).containsExactly("lan", "lan");
    }
}
