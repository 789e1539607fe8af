package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.devices.virtio.net.MacAddress;
import dev.kindling.devices.virtio.net.NetSwitch;
import dev.kindling.devices.virtio.net.NetworkInterface;
import dev.kindling.devices.virtio.net.PasstOptions;
import dev.kindling.microvm.ConfigException;
import dev.kindling.microvm.MicrovmBuilder;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Optional;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code kindling run}'s virtio options, parsed and checked without KVM. */
class RunCommandArgsTest {
    @TempDir
    Path tmp;

    private static MicrovmBuilder configure(String... argv) {
        try (RunShared shared = new RunShared()) {
            return configure(shared, argv);
        }
    }

    private static MicrovmBuilder configure(RunShared shared, String... argv) {
        return RunCommand.configure(new Args(List.of(argv), RunCommand.OPTIONS, RunCommand.FLAGS), shared);
    }

    private Path kernel() throws Exception {
        return Files.write(tmp.resolve("k.elf"), new byte[] {0x7f, 'E', 'L', 'F', 0, 0, 0, 0});
    }

    @Test
    void diskTakesAPathAndOptions() {
        assertThat(RunCommand.Disk.parse("/a.img")).isEqualTo(new RunCommand.Disk(Path.of("/a.img"), false, false));
        assertThat(RunCommand.Disk.parse("/a.img,ro")).isEqualTo(new RunCommand.Disk(Path.of("/a.img"), true, false));
        assertThat(RunCommand.Disk.parse("/a.img,root,ro")).isEqualTo(new RunCommand.Disk(Path.of("/a.img"), true, true));
        assertThatThrownBy(() -> RunCommand.Disk.parse("/a.img,rw")).isInstanceOf(UsageException.class)
                .hasMessage("--disk /a.img,rw: unknown option 'rw' (PATH[,ro][,root])");
        assertThatThrownBy(() -> RunCommand.Disk.parse(",ro")).isInstanceOf(UsageException.class)
                .hasMessageContaining("PATH[,ro][,root]");
        assertThatThrownBy(() -> configure("--disk")).isInstanceOf(UsageException.class).hasMessage("--disk needs a value");
    }

    @Test
    void disksAreRepeatableAndCheckedByValidate() throws Exception {
        String k = kernel().toString();
        Path a = Files.write(tmp.resolve("a.img"), new byte[4096]);
        Path b = Files.write(tmp.resolve("b.img"), new byte[4096]);
        configure("--kernel", k, "--disk", a.toString(), "--disk", b + ",ro", "--virtio-console", "--rng").validate();

        assertThatThrownBy(() -> configure("--kernel", k, "--disk", tmp.resolve("none.img").toString()).validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioBlk"))
                .hasMessageContaining("none.img does not exist");
        assertThatThrownBy(() -> configure("--kernel", k, "--disk", a.toString(), "--disk", a.toString()).validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioBlk"))
                .hasMessageContaining("both use");
        assertThatThrownBy(() -> configure("--kernel", k, "--disk", a + ",root", "--disk", b + ",root").validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("rootDevice"));
        Files.setPosixFilePermissions(b, PosixFilePermissions.fromString("r--r--r--"));
        assertThatThrownBy(() -> configure("--kernel", k, "--disk", b.toString()).validate())
                .isInstanceOf(ConfigException.class).hasMessageContaining("read-only");
        configure("--kernel", k, "--disk", b + ",ro").validate();

        String[] nine = new String[2 + 2 * 8 + 1];
        nine[0] = "--kernel";
        nine[1] = k;
        for (int i = 0; i < 8; i++) {
            nine[2 + 2 * i] = "--disk";
            nine[3 + 2 * i] = b + ",ro";
        }
        nine[nine.length - 1] = "--rng";
        assertThatThrownBy(() -> configure(nine).validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioRng"))
                .hasMessageContaining("8 transports");
    }

    @Test
    void flagsTakeNoValue() {
        assertThatThrownBy(() -> configure("--rng=yes")).isInstanceOf(UsageException.class).hasMessage("unknown option --rng");
    }

    private static final Function<String, NetSwitch> NO_SWITCHES = name -> {
        throw new AssertionError("no switch expected, asked for " + name);
    };

    @Test
    void vsockTakesACidAndOptionallyASocketPath() {
        assertThat(RunCommand.Vsock.parse("3")).isEqualTo(new RunCommand.Vsock(3, Optional.empty()));
        assertThat(RunCommand.Vsock.parse("4294967294,/tmp/v.sock"))
                .isEqualTo(new RunCommand.Vsock(4294967294L, Optional.of(Path.of("/tmp/v.sock"))));
        // a path may hold commas: only the first one separates
        assertThat(RunCommand.Vsock.parse("5,/tmp/a,b")).isEqualTo(new RunCommand.Vsock(5, Optional.of(Path.of("/tmp/a,b"))));
        assertThatThrownBy(() -> RunCommand.Vsock.parse("three")).isInstanceOf(UsageException.class)
                .hasMessage("--vsock three: the guest CID 'three' is not a number; --vsock takes CID[,PATH] (CID 3 to 4294967294)");
        assertThatThrownBy(() -> RunCommand.Vsock.parse(",/tmp/v.sock")).isInstanceOf(UsageException.class)
                .hasMessageContaining("is not a number");
        for (String cid : new String[] {"2", "0", "-3", "4294967295"}) {
            assertThatThrownBy(() -> RunCommand.Vsock.parse(cid + ",/v")).isInstanceOf(UsageException.class)
                    .hasMessage("--vsock " + cid + ",/v: guest CID " + cid + " is reserved or too large (0-2 are the"
                            + " hypervisor's, the local and the host's); --vsock takes CID[,PATH] (CID 3 to 4294967294)");
        }
        assertThatThrownBy(() -> RunCommand.Vsock.parse("3,")).isInstanceOf(UsageException.class)
                .hasMessage("--vsock 3,: the socket path is empty; --vsock takes CID[,PATH] (CID 3 to 4294967294)");
        assertThatThrownBy(() -> configure("--vsock")).isInstanceOf(UsageException.class).hasMessage("--vsock needs a value");
    }

    @Test
    void vsockIsCheckedByValidate() throws Exception {
        String k = kernel().toString();
        configure("--kernel", k, "--vsock", "3").validate();
        configure("--kernel", k, "--vsock", "3," + tmp.resolve("v.sock")).validate();
        assertThatThrownBy(() -> configure("--kernel", k, "--vsock", "3", "--vsock", "4")).isInstanceOf(UsageException.class)
                .hasMessage("--vsock given twice: a microVM has one vsock device");
        Path taken = Files.write(tmp.resolve("taken.sock"), new byte[0]);
        assertThatThrownBy(() -> configure("--kernel", k, "--vsock", "3," + taken).validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("vsock"))
                .hasMessageContaining("already exists");
        assertThatThrownBy(() -> configure("--kernel", k, "--vsock", "3," + tmp.resolve("none/v.sock")).validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("vsock"))
                .hasMessageContaining("does not exist");
    }

    @Test
    void netTakesABackendAndAMac() {
        MacAddress mac = MacAddress.parse("06:00:ac:10:00:02");
        assertThat(RunCommand.parseNet("tap=tap0", "eth0", NO_SWITCHES)).isEqualTo(NetworkInterface.tap("eth0", "tap0"));
        assertThat(RunCommand.parseNet("tap=tap0,mac=06:00:AC:10:00:02", "eth1", NO_SWITCHES))
                .isEqualTo(NetworkInterface.tap("eth1", "tap0").withMac(mac));
        assertThat(RunCommand.parseNet("passt", "eth0", NO_SWITCHES)).isEqualTo(NetworkInterface.passt("eth0"));
        assertThat(RunCommand.parseNet("passt,mac=06:00:ac:10:00:02,socket=/run/p.sock", "eth0", NO_SWITCHES))
                .isEqualTo(NetworkInterface.passt("eth0", PasstOptions.connectTo(Path.of("/run/p.sock"))).withMac(mac));

        String form = "; --net takes tap=TAP, passt[,socket=PATH] or switch=NAME, each with [,mac=MAC]";
        assertThatThrownBy(() -> RunCommand.parseNet("tap", "eth0", NO_SWITCHES)).isInstanceOf(UsageException.class)
                .hasMessage("--net tap: tap= needs a name" + form);
        assertThatThrownBy(() -> RunCommand.parseNet("tap=", "eth0", NO_SWITCHES)).isInstanceOf(UsageException.class)
                .hasMessage("--net tap=: tap= needs a name" + form);
        assertThatThrownBy(() -> RunCommand.parseNet("switch=,mac=06:00:00:00:00:01", "eth0", NO_SWITCHES))
                .isInstanceOf(UsageException.class).hasMessage("--net switch=,mac=06:00:00:00:00:01: switch= needs a name" + form);
        assertThatThrownBy(() -> RunCommand.parseNet("vde=/tmp/s", "eth0", NO_SWITCHES)).isInstanceOf(UsageException.class)
                .hasMessage("--net vde=/tmp/s: unknown backend 'vde'" + form);
        assertThatThrownBy(() -> RunCommand.parseNet("", "eth0", NO_SWITCHES)).isInstanceOf(UsageException.class)
                .hasMessage("--net : unknown backend ''" + form);
        assertThatThrownBy(() -> RunCommand.parseNet("passt=/run/p.sock", "eth0", NO_SWITCHES))
                .isInstanceOf(UsageException.class)
                .hasMessage("--net passt=/run/p.sock: passt takes no value (passt,socket=PATH connects to a running one)");
        assertThatThrownBy(() -> RunCommand.parseNet("passt,socket=", "eth0", NO_SWITCHES)).isInstanceOf(UsageException.class)
                .hasMessage("--net passt,socket=: socket= needs the path of passt's socket");
        assertThatThrownBy(() -> RunCommand.parseNet("tap=tap0,socket=/p", "eth0", NO_SWITCHES))
                .isInstanceOf(UsageException.class).hasMessage("--net tap=tap0,socket=/p: unexpected 'socket=/p'" + form);
        assertThatThrownBy(() -> RunCommand.parseNet("tap=tap0,mtu=9000", "eth0", NO_SWITCHES))
                .isInstanceOf(UsageException.class).hasMessage("--net tap=tap0,mtu=9000: unexpected 'mtu=9000'" + form);
        assertThatThrownBy(() -> RunCommand.parseNet("tap=tap0,mac=06:00:00:00:00:01,mac=06:00:00:00:00:02", "eth0",
                NO_SWITCHES)).isInstanceOf(UsageException.class).hasMessageContaining("unexpected 'mac=06:00:00:00:00:02'");
        assertThatThrownBy(() -> RunCommand.parseNet("tap=tap0,mac=06:00:00:00:01", "eth0", NO_SWITCHES))
                .isInstanceOf(UsageException.class)
                .hasMessage("--net tap=tap0,mac=06:00:00:00:01: MAC address '06:00:00:00:01' is not six octets like"
                        + " 02:00:00:00:00:01");
        assertThatThrownBy(() -> configure("--net")).isInstanceOf(UsageException.class).hasMessage("--net needs a value");
    }

    @Test
    void interfacesAreNumberedInOrderAfterTheJsonFilesAndCheckedByValidate() throws Exception {
        String k = kernel().toString();
        configure("--kernel", k, "--net", "tap=tap0", "--net", "passt", "--net", "tap=tap1,mac=06:00:00:00:00:01").validate();
        // the second interface is eth1: its error says so
        assertThatThrownBy(() -> configure("--kernel", k, "--net", "tap=tap0", "--net", "tap=tap0").validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioNet"))
                .hasMessage("network interface 'eth1': tap tap0 is network interface 'eth0''s already; each interface"
                        + " needs a tap of its own");
        assertThatThrownBy(() -> configure("--kernel", k, "--net", "tap=a-very-long-tap-name").validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioNet"))
                .hasMessageContaining("network interface 'eth0': 'a-very-long-tap-name' is not a tap device name");
        assertThatThrownBy(() -> configure("--kernel", k, "--net", "passt,mac=07:00:00:00:00:01").validate())
                .isInstanceOf(ConfigException.class).hasMessageContaining("multicast");

        Path json = Files.writeString(tmp.resolve("vm.json"), """
                {"boot-source": {"kernel_image_path": "%s"},
                 "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0"}]}""".formatted(k));
        configure("--config", json.toString(), "--net", "tap=tap1").validate();
        // after the file's eth0, the flag's interface is eth1
        assertThatThrownBy(() -> configure("--config", json.toString(), "--net", "tap=tap0").validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioNet"))
                .hasMessageStartingWith("network interface 'eth1': tap tap0 is network interface 'eth0''s already");
    }

    @Test
    void aSwitchPerNameLivesAsLongAsTheSwitches() throws Exception {
        String k = kernel().toString();
        try (RunShared shared = new RunShared()) {
            NetSwitch lan = shared.netSwitch("lan");
            assertThat(shared.netSwitch("lan")).isSameAs(lan);
            assertThat(shared.netSwitch("wan")).isNotSameAs(lan);
            assertThat(lan.name()).isEqualTo("lan");
            assertThat(RunCommand.parseNet("switch=lan,mac=06:00:00:00:00:09", "eth2", shared::netSwitch))
                    .isEqualTo(NetworkInterface.onSwitch("eth2", lan).withMac(MacAddress.parse("06:00:00:00:00:09")));
            configure(shared, "--kernel", k, "--net", "switch=lan", "--net", "switch=lan", "--net", "switch=dmz").validate();
            assertThat(shared.netSwitch("dmz").name()).isEqualTo("dmz");

            // a JSON file's switches are the run's too
            Path json = Files.writeString(tmp.resolve("vm.json"), """
                    {"boot-source": {"kernel_image_path": "%s"},
                     "network-interfaces": [{"iface_id": "eth0", "switch": "lan"}]}""".formatted(k));
            configure(shared, "--config", json.toString(), "--net", "switch=lan").validate();
        }
    }

    @Test
    void badNetAndVsockValuesAreUsageErrors() {
        for (String[] argv : new String[][] {
                {"run", "--kernel", "/k", "--vsock", "2"},
                {"run", "--kernel", "/k", "--net", "tap=tap0,mac=nope"},
                {"run", "--kernel", "/k", "--net", "bridge=br0"}}) {
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            int status = Kindling.run(List.of(argv), new ByteArrayInputStream(new byte[0]),
                    new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8),
                    new PrintStream(err, true, StandardCharsets.UTF_8));
            assertThat(status).isEqualTo(64);
            assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: " + argv[3] + " " + argv[4] + ": ")
                    .contains("usage: kindling probe").contains("--vsock CID[,PATH]").contains("CONNECT <port>\\n");
        }
    }

    @Test
    void ivshmemTakesSharedMemoryOrAServerAndPciIsCheckedByValidate() throws Exception {
        String k = kernel().toString();
        Path shm = tmp.resolve("shm");
        try (RunShared shared = new RunShared()) {
            configure(shared, "--kernel", k, "--ivshmem", "shm=" + shm + ",size=64K").validate();
        }
        assertThat(shm).as("made when missing").hasSize(64 << 10);
        assertThatThrownBy(() -> configure("--kernel", k, "--ivshmem", "shm=" + shm + ",size=64K", "--pci", "off").validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("pci"))
                .hasMessageContaining("is a PCI device, but pci is off");
        assertThatThrownBy(() -> configure("--kernel", k, "--ivshmem", "server=" + tmp.resolve("none.sock")).validate())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("ivshmemServer"))
                .hasMessageContaining("does not exist");
        configure("--kernel", k, "--pci", "on").validate();
        for (String bad : new String[] {"shm=" + shm, "size=4M", "server=", "server=/s,msi=maybe", "shm=/x,size=4M,extra=1",
                "server=/s,server=/t"}) {
            assertThatThrownBy(() -> configure("--kernel", k, "--ivshmem", bad)).as(bad).isInstanceOf(UsageException.class)
                    .hasMessageStartingWith("--ivshmem " + bad + ": ");
        }
        assertThatThrownBy(() -> configure("--kernel", k, "--ivshmem", "shm=" + tmp.resolve("s2") + ",size=3M"))
                .isInstanceOf(UsageException.class).hasMessageContaining("power of two");
    }

    @Test
    void vfioPlatformTakesQemusOptionsAndBuildNamesWhatIsMissing() throws Exception {
        String k = kernel().toString();
        Path device = Files.createDirectory(tmp.resolve("fff51000.ethernet"));
        MicrovmBuilder b = configure("--kernel", k, "--vfio-platform",
                "host=" + device + ",addr=0xc0000000,irq=10,x-no-mmap=on,mmap-timeout-ms=500,x-irqfd=off");
        b.validate(); // nothing is opened before build()
        assertThatThrownBy(b::build).isInstanceOfSatisfying(ConfigException.class,
                e -> assertThat(e.field()).isEqualTo("vfioPlatform"))
                .hasMessageContaining(device + " has no IOMMU group");
        MicrovmBuilder byPath = configure("--kernel", k, "--vfio-platform", "sysfsdev=" + device + ",addr=0xc0000000,irq=10");
        assertThatThrownBy(byPath::build).isInstanceOf(ConfigException.class).hasMessageContaining(device + " has no IOMMU group");
        MicrovmBuilder byName = configure("--kernel", k, "--vfio-platform", "host=kindling-no-such.device,addr=0xc0000000,irq=10",
                "--device-tree", "off");
        assertThatThrownBy(byName::build).isInstanceOf(ConfigException.class)
                .hasMessageContaining("/sys/bus/platform/devices/kindling-no-such.device is not a device directory in sysfs");
        assertThatThrownBy(() -> configure("--kernel", k, "--device-tree", "maybe")).isInstanceOf(ConfigException.class)
                .hasMessageContaining("--device-tree");
        for (String bad : new String[] {"host=/d,addr=0xc0000000", "host=/d,addr=zz,irq=1", "host=/d,addr=0xc0000000,irq=1,x-irqfd=maybe",
                "host=/d,addr=0xc0000000,irq=1,rombar=0", "host=/d,addr=0xc0000000,irq=1,mmap-timeout-ms=-1",
                "host=d,sysfsdev=/d,addr=0xc0000000,irq=1", "addr=0xc0000000,irq=1", "sysfsdev=,addr=0xc0000000,irq=1"}) {
            assertThatThrownBy(() -> configure("--kernel", k, "--vfio-platform", bad)).as(bad).isInstanceOf(UsageException.class)
                    .hasMessageStartingWith("--vfio-platform " + bad + ": ");
        }
    }
}
