package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.kindling.devices.virtio.net.MacAddress;
import dev.kindling.devices.virtio.net.NetBackend;
import dev.kindling.devices.virtio.net.NetworkInterface;
import dev.kindling.devices.virtio.net.PasstOptions;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.UnixSocket;
import dev.kindling.testing.HostResources;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The builder's vsock and virtio-net settings: what {@code validate()} refuses without KVM, and what
 * {@code build()} does with a backend that cannot be opened (a configuration error naming the
 * interface, and nothing left open).
 */
class MicrovmVsockNetConfigTest {
    @TempDir
    Path tmp;

    private Path elfMagic() throws IOException {
        byte[] b = new byte[4096];
        b[0] = 0x7f;
        b[1] = 'E';
        b[2] = 'L';
        b[3] = 'F';
        return Files.write(tmp.resolve("magic.elf"), b);
    }

    private static ConfigException configError(MicrovmBuilder b, String field) {
        ConfigException e = catchThrowableOfType(ConfigException.class, b::validate);
        assertThat(e).as("validate() of a configuration wrong in " + field).isNotNull();
        assertThat(e.field()).as(e.getMessage()).isEqualTo(field);
        return e;
    }

    private MicrovmBuilder valid() {
        return Microvm.builder().memoryMib(64).kernel(TestGuests.elf("hello"));
    }

    /** A backend of the test's own: one end of a socketpair as its readable fd; counts its closes. */
    private static final class PairBackend implements NetBackend {
        private final Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
        final AtomicInteger closes = new AtomicInteger();

        @Override
        public Fd readable() {
            return pair[0];
        }

        @Override
        public boolean vnetHeader() {
            return false;
        }

        @Override
        public int receive(MemorySegment into) {
            return 0;
        }

        @Override
        public boolean send(MemorySegment frame) {
            return true;
        }

        @Override
        public void close() {
            if (closes.getAndIncrement() == 0) {
                pair[0].close();
                pair[1].close();
            }
        }
    }

    @Test
    void theGuestCidIsThreeToTwoToTheThirtyTwoMinusTwo() throws Exception {
        Path k = elfMagic();
        Microvm.builder().kernel(k).vsock(3).validate();
        Microvm.builder().kernel(k).vsock(0xFFFF_FFFEL).validate();
        for (long cid : new long[] {-1, 0, 1, 2, 0xFFFF_FFFFL, 1L << 32}) {
            assertThat(configError(Microvm.builder().kernel(k).vsock(cid), "vsock"))
                    .hasMessage("guest CID " + cid + " is reserved (0-2 are the hypervisor's, the local and the host's)"
                            + " or too large: use 3 to 4294967294");
        }
        assertThat(configError(Microvm.builder().kernel(k).vsock(3).vsock(4), "vsock"))
                .hasMessage("vsock given twice: a microVM has one vsock device");
        assertThatThrownBy(() -> Microvm.builder().vsock(3, null)).isInstanceOf(NullPointerException.class)
                .hasMessage("udsPath");
    }

    @Test
    void theUdsPathMustBeFreeInADirectoryAndShortEnough() throws Exception {
        Path k = elfMagic();
        Microvm.builder().kernel(k).vsock(3, tmp.resolve("v.sock")).validate();

        Path taken = Files.write(tmp.resolve("taken.sock"), new byte[0]);
        assertThat(configError(Microvm.builder().kernel(k).vsock(3, taken), "vsock"))
                .hasMessage("vsock uds_path " + taken + " already exists; remove it, or choose another path");
        // a dangling link is there too: bind(2) would fail on it
        Path dangling = Files.createSymbolicLink(tmp.resolve("dangling.sock"), tmp.resolve("nowhere"));
        assertThat(configError(Microvm.builder().kernel(k).vsock(3, dangling), "vsock")).hasMessageContaining("already exists");

        Path orphan = tmp.resolve("no-dir").resolve("v.sock");
        assertThat(configError(Microvm.builder().kernel(k).vsock(3, orphan), "vsock"))
                .hasMessage("vsock uds_path " + orphan + ": directory " + tmp.resolve("no-dir") + " does not exist");
        Path fileParent = taken.resolve("v.sock");
        assertThat(configError(Microvm.builder().kernel(k).vsock(3, fileParent), "vsock"))
                .hasMessageContaining("does not exist");

        // sun_path's 108 bytes hold <uds_path>_<port> (up to 11 more) and the NUL: 96 bytes at most
        String dir = tmp.toString() + "/";
        Path longest = Path.of(dir + "s".repeat(96 - dir.length()));
        Path tooLong = Path.of(dir + "s".repeat(97 - dir.length()));
        assertThat(longest.toString()).hasSize(96);
        Microvm.builder().kernel(k).vsock(3, longest).validate();
        assertThat(configError(Microvm.builder().kernel(k).vsock(3, tooLong), "vsock"))
                .hasMessage("vsock uds_path " + tooLong + " is too long for a Unix socket with a _<port> suffix"
                        + " (at most 96 bytes)");
    }

    @Test
    void interfacesNeedTheirOwnIdMacAndTap() throws Exception {
        Path k = elfMagic();
        MacAddress mac = MacAddress.parse("06:00:ac:10:00:02");
        Microvm.builder().kernel(k).virtioNet(NetworkInterface.tap("eth0", "tap0").withMac(mac))
                .virtioNet(NetworkInterface.tap("eth1", "tap1")).virtioNet(NetworkInterface.passt("eth2"))
                .virtioNet(NetworkInterface.custom("eth3", PairBackend::new)).validate();

        assertThat(configError(Microvm.builder().kernel(k).virtioNet(NetworkInterface.tap("eth0", "tap0"))
                .virtioNet(NetworkInterface.passt("eth0")), "virtioNet"))
                .hasMessage("network interface id 'eth0' is given twice");
        assertThat(configError(Microvm.builder().kernel(k).virtioNet(NetworkInterface.tap("a", "tap0").withMac(mac))
                .virtioNet(NetworkInterface.custom("b", PairBackend::new).withMac(mac)), "virtioNet"))
                .hasMessage("network interface 'b': guest MAC 06:00:ac:10:00:02 is network interface 'a''s already");
        assertThat(configError(Microvm.builder().kernel(k).virtioNet(NetworkInterface.tap("a", "tap0"))
                .virtioNet(NetworkInterface.tap("b", "tap0")), "virtioNet"))
                .hasMessage("network interface 'b': tap tap0 is network interface 'a''s already; each interface needs a"
                        + " tap of its own");
        assertThat(configError(Microvm.builder().kernel(k)
                .virtioNet(NetworkInterface.tap("a", "tap0").withMac(MacAddress.parse("01:00:5e:00:00:01"))), "virtioNet"))
                .hasMessage("network interface 'a': guest MAC 01:00:5e:00:00:01 is a multicast address; an interface"
                        + " needs a unicast one (first octet even)");
        for (String name : new String[] {"", "a-tap-name-of-16", "tap/0", "tap:0", "tap 0", ".", ".."}) {
            assertThat(configError(Microvm.builder().kernel(k).virtioNet(NetworkInterface.tap("a", name)), "virtioNet"))
                    .hasMessage("network interface 'a': '" + name + "' is not a tap device name (1 to 15 bytes,"
                            + " no '/', ':' or white space)");
        }
        Microvm.builder().kernel(k).virtioNet(NetworkInterface.tap("a", "a-tap-name-of15")).validate();

        // a console, rng, vsock and five interfaces take the eight transports
        MicrovmBuilder nine = Microvm.builder().kernel(k).virtioConsole().virtioRng().vsock(3);
        for (int i = 0; i < 5; i++) {
            nine.virtioNet(NetworkInterface.custom("eth" + i, PairBackend::new));
        }
        nine.validate();
        assertThat(configError(nine.virtioNet(NetworkInterface.passt("eth9")), "virtioNet"))
                .hasMessage("9 virtio-mmio devices, but microvm has 8 transports");
    }

    @Test
    void aBackendThatCannotBeOpenedNamesTheInterfaceAndLeavesNothing() {
        TestGuests.assumeKvm();
        MicrovmBuilder b = valid().virtioNet(NetworkInterface.custom("uplink", () -> {
            throw new UncheckedIOException(new IOException("tap uplink0: Operation not permitted"));
        }));
        assertThatThrownBy(b::build).isInstanceOf(ConfigException.class); // warms up lazily made JVM resources
        HostResources before = HostResources.now();
        for (int i = 0; i < 5; i++) {
            assertThatThrownBy(b::build)
                    .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioNet"))
                    .hasMessageStartingWith("network interface 'uplink': ")
                    .hasMessageContaining("tap uplink0: Operation not permitted");
        }
        assertThatThrownBy(() -> valid().virtioNet(NetworkInterface.custom("eth0", () -> null)).build())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioNet"))
                .hasMessage("network interface 'eth0': the backend factory returned null");
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aPasstThatIsNotThereNamesTheInterface() {
        TestGuests.assumeKvm();
        Path none = tmp.resolve("no-passt.sock");
        assertThatThrownBy(() -> valid().virtioNet(NetworkInterface.passt("wan", PasstOptions.connectTo(none))).build())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioNet"))
                .hasMessageStartingWith("network interface 'wan': ").hasMessageContaining(none.toString());
    }

    @Test
    void aFailureAfterTheVsockDeviceRemovesItsSocket() {
        TestGuests.assumeKvm();
        Path uds = tmp.resolve("v.sock");
        MicrovmBuilder b = valid().vsock(3, uds).virtioNet(NetworkInterface.custom("eth0", () -> {
            throw new IllegalStateException("no backend");
        }));
        assertThatThrownBy(b::build).isInstanceOf(ConfigException.class);
        HostResources before = HostResources.now();
        for (int i = 0; i < 5; i++) {
            assertThatThrownBy(b::build)
                    .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioNet"))
                    .hasMessage("network interface 'eth0': no backend");
            assertThat(uds).as("the failed build's vsock socket").doesNotExist();
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aLaterInterfaceFailingClosesTheEarlierOnesBackend() {
        TestGuests.assumeKvm();
        List<PairBackend> opened = new ArrayList<>();
        MicrovmBuilder b = valid().virtioNet(NetworkInterface.custom("eth0", () -> {
            PairBackend p = new PairBackend();
            opened.add(p);
            return p;
        })).virtioNet(NetworkInterface.custom("eth1", () -> {
            throw new IllegalStateException("no such switch port");
        }));
        assertThatThrownBy(b::build).isInstanceOf(ConfigException.class);
        HostResources before = HostResources.now();
        for (int i = 0; i < 5; i++) {
            assertThatThrownBy(b::build)
                    .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioNet"))
                    .hasMessage("network interface 'eth1': no such switch port");
        }
        HostResources.now().assertNothingLeftSince(before);
        assertThat(opened).hasSize(6).allSatisfy(p -> assertThat(p.closes.get()).as("closes of eth0's backend").isOne());
    }

    @Test
    void anInterfaceAndItsBackendLiveAsLongAsTheVm() {
        TestGuests.assumeKvm();
        List<PairBackend> opened = new ArrayList<>();
        MicrovmBuilder b = valid().cmdline("console=ttyS0").virtioNet(NetworkInterface.custom("eth0", () -> {
            PairBackend p = new PairBackend();
            opened.add(p);
            return p;
        }).withMac(MacAddress.parse("06:00:00:00:00:01")));
        b.build().close();
        HostResources before = HostResources.now();
        try (Microvm vm = b.build()) {
            assertThat(vm.cmdline()).isEqualTo("console=ttyS0 virtio_mmio.device=512@0xd0000000:5");
            assertThat(opened.getLast().closes.get()).isZero();
        }
        assertThat(opened.getLast().closes.get()).as("the backend is closed with the VM").isOne();
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aVmWithoutVsockSaysSo() {
        TestGuests.assumeKvm();
        try (Microvm vm = valid().build()) {
            assertThatThrownBy(vm::vsock).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("no vsock device").hasMessageContaining("MicrovmBuilder.vsock(cid)");
        }
    }

    @Test
    void theUdsPathListensWhileTheVmLivesAndIsGoneAfter() throws Exception {
        TestGuests.assumeKvm();
        Path uds = tmp.resolve("v.sock");
        MicrovmBuilder b = valid().vsock(7, uds);
        b.build().close();
        assertThat(uds).doesNotExist();
        HostResources before = HostResources.now();
        try (Microvm vm = b.build()) {
            assertThat(vm.vsock().guestCid()).isEqualTo(7);
            assertThat(vm.vsock().udsPath()).contains(uds);
            try (Fd client = UnixSocket.connect(uds)) {
                assertThat(client.isOpen()).isTrue();
            }
            // a second VM cannot take the same path
            assertThatThrownBy(() -> valid().vsock(8, uds).build())
                    .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("vsock"))
                    .hasMessageContaining("already exists");
        }
        assertThat(uds).as("the socket is removed with the VM").doesNotExist();
        HostResources.now().assertNothingLeftSince(before);
        try (Microvm vm = valid().vsock(3).build()) {
            assertThat(vm.vsock().udsPath()).isEmpty();
        }
    }
}
