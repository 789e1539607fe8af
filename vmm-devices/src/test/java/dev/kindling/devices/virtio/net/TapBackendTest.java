package dev.kindling.devices.virtio.net;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.sys.Errno;
import dev.kindling.sys.Poller;
import dev.kindling.testing.HostResources;
import dev.kindling.testing.Require;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * A tap opened in the test's namespace and moved into one the test creates, whose kernel answers
 * the frames the test sends through the backend: an ARP request and an ICMP echo request.
 */
class TapBackendTest {
    private static final long OUR_MAC = 0x02_4B_44_00_00_01L;
    private static final int VNET = VirtioNet.VNET_HEADER_SIZE;

    private static void requireTun() {
        Require.that(Files.exists(Path.of(Tun.DEVICE)), Tun.DEVICE + " is missing: no tun driver");
    }

    private static byte[] withHeader(byte[] frame) {
        return Frames.concat(new byte[VNET], frame);
    }



    @Test
    void exchangesFramesWithTheKernelOfANamespace() throws Exception {
        requireTun();
        String tap = NetNamespace.uniqueName("kdtap");
        int ours = Frames.ipv4("10.213.7.1"), theirs = Frames.ipv4("10.213.7.2");
        try (NetNamespace ns = NetNamespace.create()) {
            HostResources before = HostResources.now(); // after the first process the JVM started
            try (TapBackend backend = TapBackend.open(tap)) {
                assertThat(backend.name()).isEqualTo(tap);
                assertThat(backend.vnetHeader()).isTrue();
                assertThat(Poller.waitReadable(backend.readable(), 0)).as("nothing to read yet").isFalse();
                ns.adopt(tap);
                ns.ip("addr", "add", "10.213.7.2/24", "dev", tap);
                ns.ip("link", "set", tap, "up");

                assertThat(Frames.send(backend, withHeader(Frames.arpRequest(OUR_MAC, ours, theirs)))).isTrue();
                byte[] reply = Frames.await(backend, f -> Frames.arpReplyFor(f, VNET, theirs) >= 0);
                assertThat(Arrays.copyOf(reply, VNET)).as("vnet header of a plain frame").containsOnly(0);
                assertThat(Frames.mac(reply, VNET)).as("reply addressed to us, after the header").isEqualTo(OUR_MAC);
                long theirMac = Frames.arpReplyFor(reply, VNET, theirs);
                assertThat(ns.ip("link", "show", tap)).containsIgnoringCase(macText(theirMac));

                byte[] data = "kindling tap echo".getBytes(StandardCharsets.US_ASCII);
                byte[] ping = Frames.ipv4Frame(theirMac, OUR_MAC, 1, ours, theirs, Frames.icmpEcho(0x4b44, 1, data));
                assertThat(Frames.send(backend, withHeader(ping))).isTrue();
                byte[] pong = Frames.await(backend, f -> f.length >= VNET + 34 + 8 && Frames.u16(f, VNET + 12) == Frames.ETHER_IPV4
                        && f[VNET + 23] == 1 && f[VNET + 34] == 0 && Frames.u32(f, VNET + 26) == theirs);
                assertThat(Frames.u16(pong, VNET + 38)).as("echo id").isEqualTo(0x4b44);
                byte[] echoed = Arrays.copyOfRange(pong, VNET + 42, VNET + 42 + data.length);
                assertThat(new String(echoed, StandardCharsets.US_ASCII)).isEqualTo("kindling tap echo");

                // a frame longer than the buffer is dropped whole, never handed over cut short
                byte[] big = Frames.ipv4Frame(theirMac, OUR_MAC, 1, ours, theirs, Frames.icmpEcho(0x4b44, 2, new byte[1400]));
                byte[] small = Frames.ipv4Frame(theirMac, OUR_MAC, 1, ours, theirs, Frames.icmpEcho(0x4b44, 3, data));
                assertThat(Frames.send(backend, withHeader(big))).isTrue();
                assertThat(Frames.send(backend, withHeader(small))).isTrue();
                int room = VNET + small.length;
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment buf = a.allocate(room);
                    int seq = -1;
                    long deadline = System.nanoTime() + 10_000_000_000L;
                    for (int i = 0; i < 1000 && seq != 3 && System.nanoTime() < deadline; i++) {
                        if (!Poller.waitReadable(backend.readable(), 100)) {
                            continue;
                        }
                        int n = backend.receive(buf);
                        byte[] f = buf.asSlice(0, n).toArray(JAVA_BYTE);
                        if (n >= VNET + 42 && Frames.u16(f, VNET + 12) == Frames.ETHER_IPV4 && f[VNET + 23] == 1
                                && f[VNET + 34] == 0) {
                            seq = Frames.u16(f, VNET + 40);
                            assertThat(seq).as("the echo reply that fits, not the cut one").isEqualTo(3);
                            assertThat(n).isEqualTo(room);
                        }
                    }
                    assertThat(seq).as("the small reply arrived").isEqualTo(3);
                }

                // offloads the guest accepts are set on the tap; the exchange still works after
                assertThat(backend.offloads()).isZero();
                backend.setGuestOffloads(VirtioNet.GUEST_CSUM | VirtioNet.GUEST_TSO4 | VirtioNet.GUEST_TSO6);
                assertThat(backend.offloads()).as("offloads the tap took").isEqualTo(Tun.TUN_F_CSUM | Tun.TUN_F_TSO4 | Tun.TUN_F_TSO6);
                assertThat(Frames.send(backend, withHeader(ping))).isTrue();
                Frames.await(backend, f -> f.length >= VNET + 42 && Frames.u16(f, VNET + 12) == Frames.ETHER_IPV4
                        && f[VNET + 23] == 1 && f[VNET + 34] == 0);
            }
            assertThat(ns.ipResult("link", "show", tap).succeeded()).as("tap gone once closed").isFalse();
            HostResources.now().assertNothingLeftSince(before);
        }
    }

    private static String macText(long mac) {
        StringBuilder s = new StringBuilder();
        for (int i = 5; i >= 0; i--) {
            s.append(String.format("%02x", (mac >>> (i * 8)) & 0xFF)).append(i > 0 ? ":" : "");
        }
        return s.toString();
    }

    @Test
    void aTapAttachedElsewhereIsBusy() throws Exception {
        requireTun();
        String tap = NetNamespace.uniqueName("kdtap");
        try (TapBackend first = TapBackend.open(tap)) {
            assertThatThrownBy(() -> TapBackend.open(tap)).isInstanceOf(IOException.class)
                    .hasMessageContaining(tap).hasMessageContaining("EBUSY").hasMessageContaining("attached elsewhere");
            assertThat(first.name()).isEqualTo(tap);
        } catch (IOException e) {
            if (e.getMessage().contains("EPERM")) {
                Require.unavailable("cannot create a tap: " + e.getMessage());
            }
            throw e;
        }
    }

    @Test
    void rejectsBadNames() {
        assertThatThrownBy(() -> TapBackend.open("")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> TapBackend.open("a-name-far-too-long")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("a-name-far-too-long");
        for (String name : new String[] {"a/b", "a:b", "a b", "a\tb", "a\0b", ".", ".."}) {
            assertThatThrownBy(() -> TapBackend.open(name)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("is not a tap device name");
        }
    }

    @Test
    void onlyALostTapEndsTheBackendAndOtherWriteErrorsDropTheFrame() {
        assertThat(TapBackend.tapGone(Errno.EBADF)).isTrue();
        assertThat(TapBackend.tapGone(77)).as("EBADFD").isTrue();
        for (int errno : new int[] {Errno.EIO, Errno.EINVAL, Errno.ENOMEM, 105 /* ENOBUFS */, Errno.EAGAIN}) {
            assertThat(TapBackend.tapGone(errno)).as(Errno.name(errno)).isFalse();
        }
    }

    @Test
    void offloadsFollowTheGuestsFeatures() {
        assertThat(TapBackend.offloadFlags(0)).isZero();
        assertThat(TapBackend.offloadFlags(VirtioNet.GUEST_TSO4)).as("TSO needs checksum offload").isZero();
        assertThat(TapBackend.offloadFlags(VirtioNet.GUEST_CSUM)).isEqualTo(Tun.TUN_F_CSUM);
        assertThat(TapBackend.offloadFlags(VirtioNet.GUEST_CSUM | VirtioNet.GUEST_TSO4 | VirtioNet.GUEST_TSO6
                | VirtioNet.GUEST_ECN)).isEqualTo(Tun.TUN_F_CSUM | Tun.TUN_F_TSO4 | Tun.TUN_F_TSO6 | Tun.TUN_F_TSO_ECN);
        assertThat(TapBackend.offloadFlags(VirtioNet.GUEST_CSUM | VirtioNet.GUEST_ECN)).as("ECN only with TSO")
                .isEqualTo(Tun.TUN_F_CSUM);
    }
}
