package dev.kindling.devices.virtio.net;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.Poller;
import dev.kindling.sys.UnixSocket;
import dev.kindling.testing.BoundedProcess;
import dev.kindling.testing.HostResources;
import dev.kindling.testing.Require;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The passt backend against a real passt (ARP and a TCP SYN to the gateway, which passt maps to the
 * host's loopback, with no DNS offered and no traffic leaving the host), and its framing against a
 * socket the test plays passt on: partial frames, oversized lengths, a full socket, the end of passt.
 */
class PasstBackendTest {
    private static final long GUEST_MAC = 0x02_4B_44_00_00_0FL;
    private static final Duration INSTALL_LIMIT = Duration.ofMinutes(10);

    @TempDir
    Path temp;

    private static void requirePasst() throws Exception {
        if (Require.onPath("passt")) {
            return;
        }
        if (Require.onPath("apt-get") && isRoot()) {
            BoundedProcess.run(INSTALL_LIMIT, "apt-get", "update", "-qq");
            BoundedProcess.run(INSTALL_LIMIT, "apt-get", "install", "-y", "-qq", "passt");
        }
        Require.that(Require.onPath("passt"), "passt is not installed (apt-get install passt)");
    }

    private static boolean isRoot() throws IOException {
        return Files.readAllLines(Path.of("/proc/self/status")).stream()
                .anyMatch(l -> l.startsWith("Uid:") && l.substring(4).trim().split("\\s+")[1].equals("0"));
    }



    private static boolean isSynAck(byte[] f, int srcPort, int dstPort) {
        return f.length >= 54 && Frames.u16(f, 12) == Frames.ETHER_IPV4 && f[23] == 6
                && Frames.u16(f, 34) == srcPort && Frames.u16(f, 36) == dstPort && (f[47] & 0x12) == 0x12;
    }

    @Test
    void aStartedPasstAnswersArpAndConnectsASynToTheHostsLoopback() throws Exception {
        requirePasst();
        int guest = Frames.ipv4("10.213.9.15"), gateway = Frames.ipv4("10.213.9.2");
        PasstOptions options = PasstOptions.defaults().withAddress("10.213.9.15", 24, "10.213.9.2").withDns(false);
        // warm up what the JVM opens once (process reaper, a socket it closes others through) before counting
        PasstBackend.open(options).close();
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
                Socket c = new Socket(InetAddress.getLoopbackAddress(), s.getLocalPort());
                Socket a = s.accept()) {
            assertThat(a.isConnected() && c.isConnected()).isTrue();
        }
        HostResources before = HostResources.now();
        try (ServerSocket server = new ServerSocket()) {
            server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            server.setSoTimeout(10_000);
            try (PasstBackend passt = PasstBackend.open(options)) {
                assertThat(passt.vnetHeader()).isFalse();
                assertThat(Frames.send(passt, Frames.arpRequest(GUEST_MAC, guest, gateway))).isTrue();
                byte[] arp = Frames.await(passt, f -> Frames.arpReplyFor(f, 0, gateway) >= 0);
                assertThat(Frames.mac(arp, 0)).isEqualTo(GUEST_MAC);
                long gatewayMac = Frames.arpReplyFor(arp, 0, gateway);

                int port = server.getLocalPort(), srcPort = 40123;
                byte[] syn = Frames.ipv4Frame(gatewayMac, GUEST_MAC, 6, guest, gateway,
                        Frames.tcpSyn(guest, srcPort, gateway, port, 0x4b440000));
                assertThat(Frames.send(passt, syn)).isTrue();
                try (Socket accepted = server.accept()) {
                    assertThat(accepted.getInetAddress().isLoopbackAddress()).isTrue();
                } catch (SocketTimeoutException e) {
                    throw new AssertionError("passt did not connect to 127.0.0.1:" + port + "; " + passt.log(), e);
                }
                Frames.await(passt, f -> isSynAck(f, port, srcPort));
            }
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void withNoDefaultRouteTheAddedFlagsStillGiveAWorkingPasst() throws Exception {
        requirePasst();
        try (NetNamespace ns = NetNamespace.create()) {
            Path dir = Files.createDirectory(temp.resolve("passt"));
            // passt, as nobody, must reach its socket's directory
            Files.setPosixFilePermissions(temp, PosixFilePermissions.fromString("rwx--x--x"));
            if (isRoot()) {
                Files.setOwner(dir, dir.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName("nobody"));
            }
            Path sock = dir.resolve("passt.sock");
            List<String> command = new ArrayList<>(List.of("ip", "netns", "exec", ns.name()));
            command.addAll(PasstBackend.command(Path.of("passt"), sock, PasstOptions.defaults().withDns(false), isRoot(), false));
            Process passt = new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectOutput(temp.resolve("passt.log").toFile()).start();
            try {
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (!Files.exists(sock) && passt.isAlive() && System.nanoTime() < deadline) {
                    passt.waitFor(10, TimeUnit.MILLISECONDS);
                }
                assertThat(Files.exists(sock)).as("passt listening; it said: %s", Files.readString(temp.resolve("passt.log")))
                        .isTrue();
                PasstBackend connected = null;
                for (int i = 0; i < 1000 && connected == null && System.nanoTime() < deadline; i++) {
                    try {
                        connected = PasstBackend.open(PasstOptions.connectTo(sock));
                    } catch (IOException e) {
                        passt.waitFor(10, TimeUnit.MILLISECONDS); // bound, not listening yet
                    }
                }
                assertThat(connected).as("connected to passt").isNotNull();
                try (PasstBackend backend = connected) {
                    int guest = Frames.ipv4("10.0.2.15"), gateway = Frames.ipv4("10.0.2.2");
                    assertThat(Frames.send(backend, Frames.arpRequest(GUEST_MAC, guest, gateway))).isTrue();
                    Frames.await(backend, f -> Frames.arpReplyFor(f, 0, gateway) >= 0);
                }
            } finally {
                passt.destroyForcibly();
                passt.waitFor(10, TimeUnit.SECONDS);
            }
        }
    }

    @Test
    void theCommandLine() {
        Path passt = Path.of("/usr/bin/passt"), sock = Path.of("/tmp/x/passt.sock");
        PasstOptions quiet = PasstOptions.defaults().withAddress("10.1.2.3", 24, "10.1.2.1").withDns(false)
                .withExtraArguments(List.of("--mtu", "1500"));
        assertThat(PasstBackend.command(passt, sock, quiet, false, true)).containsExactly("/usr/bin/passt", "--foreground",
                "--one-off", "--socket", "/tmp/x/passt.sock", "-q", "-a", "10.1.2.3", "-n", "24", "-g", "10.1.2.1",
                "--dns", "none", "--no-dhcp-dns", "--no-dhcp-search", "--mtu", "1500");
        assertThat(PasstBackend.command(passt, sock, PasstOptions.defaults(), true, true)).containsExactly("/usr/bin/passt",
                "--foreground", "--one-off", "--socket", "/tmp/x/passt.sock", "-q", "--runas", "nobody");
        assertThat(PasstBackend.command(passt, sock, PasstOptions.defaults(), false, false)).containsSubsequence(
                "-4", "-i", "lo", "-M", "-a", "10.0.2.15", "-n", "24", "-g", "10.0.2.2");
        assertThat(PasstBackend.command(passt, sock, PasstOptions.defaults().withExtraArguments(List.of("-i", "eth1")),
                false, false)).doesNotContain("lo").endsWith("-i", "eth1");
    }

    @Test
    void findsTheDefaultRoute() {
        String header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
        assertThat(PasstBackend.hasDefaultRoute(header
                + "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
                + "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")).isTrue();
        assertThat(PasstBackend.hasDefaultRoute(header
                + "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")).isFalse();
        assertThat(PasstBackend.hasDefaultRoute(header)).isFalse();
    }

    @Test
    void aPasstThatExitsAtOnceIsAClearErrorWithItsOutput() throws Exception {
        requirePasst();
        assertThatThrownBy(() -> PasstBackend.open(PasstOptions.defaults().withDns(false)
                .withExtraArguments(List.of("--dns-forward", "nonsense"))))
                .isInstanceOf(IOException.class).hasMessageContaining("passt exited with status")
                .hasMessageContaining("Invalid DNS forwarding address: nonsense").hasMessageNotContaining("to syslog");
    }

    @Test
    void aMissingSocketIsAClearError() {
        Path nowhere = temp.resolve("no-passt.sock");
        assertThatThrownBy(() -> PasstBackend.open(PasstOptions.connectTo(nowhere))).isInstanceOf(IOException.class)
                .hasMessageContaining(nowhere.toString()).hasMessageContaining("ENOENT");
    }

    /** A length-prefixed frame of {@code length} bytes whose bytes count up from {@code first}. */
    private static byte[] framed(int length, int first) {
        ByteBuffer b = ByteBuffer.allocate(4 + length).putInt(length);
        for (int i = 0; i < length; i++) {
            b.put((byte) (first + i));
        }
        return b.array();
    }

    private static void write(Fd fd, byte[] bytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocateFrom(JAVA_BYTE, bytes);
            long done = 0;
            while (done < bytes.length) {
                long n = Libc.send(fd, s.asSlice(done), bytes.length - done, 0);
                assertThat(n).isPositive();
                done += n;
            }
        }
    }

    private static byte[] slice(byte[] b, int from, int to) {
        return Arrays.copyOfRange(b, from, to);
    }

    @Test
    @SuppressWarnings("try") // closes the peer early, as passt exiting does
    void reassemblesPartialFramesAndSkipsOnesTooLongForTheBuffer() throws Exception {
        HostResources before = HostResources.now();
        Path path = temp.resolve("fake-passt.sock");
        try (Fd listening = UnixSocket.listen(path, 1);
                PasstBackend backend = PasstBackend.open(PasstOptions.connectTo(path));
                Fd peer = UnixSocket.accept(listening);
                Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(2000);
            assertThat(backend.receive(buf)).isZero();
            assertThat(Poller.waitReadable(backend.readable(), 0)).isFalse();

            byte[] one = framed(100, 1);
            write(peer, slice(one, 0, 2)); // half the length
            assertThat(Poller.waitReadable(backend.readable(), 5000)).isTrue();
            assertThat(backend.receive(buf)).isZero();
            write(peer, slice(one, 2, 50)); // the length and part of the frame
            assertThat(backend.receive(buf)).isZero();
            assertThat(Poller.waitReadable(backend.readable(), 0)).as("nothing whole to read").isFalse();
            write(peer, slice(one, 50, one.length));
            assertThat(Poller.waitReadable(backend.readable(), 5000)).isTrue();
            assertThat(backend.receive(buf)).isEqualTo(100);
            assertThat(buf.get(JAVA_BYTE, 0)).isEqualTo((byte) 1);
            assertThat(buf.get(JAVA_BYTE, 99)).isEqualTo((byte) 100);

            // too big for the device's buffer, then fine: only the last arrive
            ByteArrayOutputStream three = new ByteArrayOutputStream();
            three.write(framed(1500, 0));
            three.write(framed(60, 7));
            three.write(framed(61, 9));
            write(peer, three.toByteArray());
            int n = 0;
            for (int i = 0; i < 100 && n == 0; i++) {
                Poller.waitReadable(backend.readable(), 100);
                n = backend.receive(buf.asSlice(0, 1000));
            }
            assertThat(n).isEqualTo(60);
            assertThat(buf.get(JAVA_BYTE, 0)).isEqualTo((byte) 7);
            assertThat(Poller.waitReadable(backend.readable(), 0)).as("a whole frame is still buffered").isTrue();
            assertThat(backend.receive(buf)).isEqualTo(61);
            assertThat(Poller.waitReadable(backend.readable(), 0)).isFalse();

            // frames the backend sends arrive length-prefixed
            assertThat(Frames.send(backend, slice(framed(64, 3), 4, 68))).isTrue();
            MemorySegment got = arena.allocate(68);
            assertThat(Libc.recv(peer, got, 68, Libc.MSG_PEEK)).isEqualTo(68);
            assertThat(got.toArray(JAVA_BYTE)).isEqualTo(framed(64, 3));
            Libc.recv(peer, got, 68, 0);

            // passt gone: the backend goes quiet instead of waking the device for ever
            peer.close();
            assertThat(Poller.waitReadable(backend.readable(), 5000)).isTrue();
            assertThat(backend.receive(buf)).isZero();
            assertThat(Poller.waitReadable(backend.readable(), 0)).as("readable after passt ended").isFalse();
            assertThat(Frames.send(backend, slice(framed(64, 3), 4, 68))).isFalse();
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aLengthNoFrameHasMeansTheFramingIsLostAndEndsTheBackend() throws Exception {
        HostResources before = HostResources.now();
        Path path = temp.resolve("lost-passt.sock");
        try (Fd listening = UnixSocket.listen(path, 1);
                PasstBackend backend = PasstBackend.open(PasstOptions.connectTo(path));
                Fd peer = UnixSocket.accept(listening);
                Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(PasstBackend.MAX_FRAME);
            ByteArrayOutputStream stream = new ByteArrayOutputStream();
            stream.write(framed(60, 7));
            stream.write(ByteBuffer.allocate(4).putInt(PasstBackend.MAX_FRAME + 1).array());
            stream.write(framed(60, 8)); // looks like a frame, but nothing after a lost length can be trusted
            write(peer, stream.toByteArray());
            int n = 0;
            for (int i = 0; i < 100 && n == 0; i++) {
                Poller.waitReadable(backend.readable(), 100);
                n = backend.receive(buf);
            }
            assertThat(n).isEqualTo(60);
            assertThat(buf.get(JAVA_BYTE, 0)).isEqualTo((byte) 7);
            assertThat(backend.receive(buf)).as("nothing after the bad length").isZero();
            assertThat(Poller.waitReadable(backend.readable(), 0)).as("readable once the framing is lost").isFalse();
            write(peer, framed(60, 9));
            assertThat(Poller.waitReadable(backend.readable(), 200)).as("passt is no longer listened to").isFalse();
            assertThat(backend.receive(buf)).isZero();
            assertThat(Frames.send(backend, slice(framed(64, 3), 4, 68))).as("send after the framing is lost").isFalse();
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aFullSocketNeverGetsHalfAFrame() throws Exception {
        Path path = temp.resolve("slow-passt.sock");
        try (Fd listening = UnixSocket.listen(path, 1);
                PasstBackend backend = PasstBackend.open(PasstOptions.connectTo(path));
                Fd peer = UnixSocket.accept(listening);
                Arena arena = Arena.ofConfined()) {
            int frameLength = 60000; // long enough that the socket takes some of one
            int accepted = 0, refused = 0;
            long slowest = 0;
            for (int i = 0; i < 2000 && refused < 3; i++) {
                byte[] frame = slice(framed(frameLength, i), 4, 4 + frameLength);
                long start = System.nanoTime();
                boolean sent = Frames.send(backend, frame);
                slowest = Math.max(slowest, System.nanoTime() - start);
                if (sent) {
                    accepted++;
                } else {
                    refused++;
                }
            }
            assertThat(refused).as("a peer that never reads fills the socket").isEqualTo(3);
            assertThat(slowest / 1_000_000).as("ms the slowest send took: a send never waits for the peer")
                    .isLessThan(100);
            // the peer now reads everything; the backend finishes the frame it started
            Libc.setNonBlocking(peer, true);
            MemorySegment buf = arena.allocate(1 << 16);
            ByteArrayOutputStream stream = new ByteArrayOutputStream();
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (stream.size() < accepted * (4 + frameLength) && System.nanoTime() < deadline) {
                long n = Libc.recv(peer, buf, buf.byteSize(), 0);
                if (n > 0) {
                    stream.write(buf.asSlice(0, n).toArray(JAVA_BYTE));
                } else {
                    backend.receive(arena.allocate(100)); // lets the backend send the rest
                    Poller.waitReadable(peer, 10);
                }
            }
            ByteBuffer all = ByteBuffer.wrap(stream.toByteArray());
            int frames = 0;
            while (all.remaining() >= 4) {
                int length = all.getInt();
                assertThat(length).as("length of frame %d", frames).isEqualTo(frameLength);
                assertThat(all.remaining()).isGreaterThanOrEqualTo(length);
                all.position(all.position() + length);
                frames++;
            }
            assertThat(all.remaining()).isZero();
            assertThat(frames).isEqualTo(accepted);
        }
    }

    /**
     * Frame {@code i} of the stream test: 14 bytes to 9 KiB, every fifth up to 64 KiB (a Unix socket
     * takes a frame over about 32 KiB in more than one buffer, so only those can go out in part); its
     * bytes depend on i and the offset.
     */
    private static byte[] streamFrame(int i) {
        int length = 14 + (int) ((i * 2654435761L) % (i % 5 == 0 ? PasstBackend.MAX_FRAME - 14 : 9000));
        byte[] f = new byte[length];
        for (int j = 0; j < length; j++) {
            f[j] = (byte) (i * 31 + j * 7 + (j >> 8));
        }
        return f;
    }

    @Test
    void framesOfManyLengthsCrossAFullSocketBothWaysByteForByte() throws Exception {
        HostResources before = HostResources.now();
        Path path = temp.resolve("stream-passt.sock");
        int count = 1500;
        try (Fd listening = UnixSocket.listen(path, 1);
                PasstBackend backend = PasstBackend.open(PasstOptions.connectTo(path));
                Fd peer = UnixSocket.accept(listening);
                Arena arena = Arena.ofConfined()) {
            Libc.setNonBlocking(peer, true);
            MemorySegment chunk = arena.allocate(1 << 16);
            MemorySegment into = arena.allocate(PasstBackend.MAX_FRAME);
            // to passt: the peer reads in odd chunk sizes, and only now and then, so the socket fills and
            // the backend's sends stop inside frames and drop some whole
            ByteArrayOutputStream toPasst = new ByteArrayOutputStream();
            List<Integer> accepted = new ArrayList<>();
            long deadline = System.nanoTime() + 60_000_000_000L;
            for (int i = 0; i < count && System.nanoTime() < deadline; i++) {
                if (Frames.send(backend, streamFrame(i))) {
                    accepted.add(i);
                }
                if (i % 7 == 0) {
                    long n = Libc.recv(peer, chunk, 1 + (i * 977L) % 40_000, 0);
                    if (n > 0) {
                        toPasst.write(chunk.asSlice(0, n).toArray(JAVA_BYTE));
                    }
                }
                backend.receive(into); // where the backend finishes a frame it started
            }
            int expected = accepted.stream().mapToInt(i -> 4 + streamFrame(i).length).sum();
            while (toPasst.size() < expected && System.nanoTime() < deadline) {
                long n = Libc.recv(peer, chunk, 4093, 0);
                if (n > 0) {
                    toPasst.write(chunk.asSlice(0, n).toArray(JAVA_BYTE));
                } else {
                    backend.receive(into);
                    Poller.waitReadable(peer, 10);
                }
            }
            assertThat(accepted.size()).as("frames the full socket took").isBetween(count / 10, count);
            ByteBuffer stream = ByteBuffer.wrap(toPasst.toByteArray());
            for (int i : accepted) {
                byte[] want = streamFrame(i);
                assertThat(stream.remaining()).as("bytes left for frame %d", i).isGreaterThanOrEqualTo(4 + want.length);
                assertThat(stream.getInt()).as("length of frame %d", i).isEqualTo(want.length);
                byte[] got = new byte[want.length];
                stream.get(got);
                assertThat(got).as("frame %d", i).isEqualTo(want);
            }
            assertThat(stream.remaining()).isZero();

            // from passt: the peer writes the stream in odd pieces; every frame arrives whole and in order
            ByteArrayOutputStream fromPasst = new ByteArrayOutputStream();
            for (int i = 0; i < 300; i++) {
                fromPasst.write(framed(streamFrame(i).length, 0), 0, 4);
                fromPasst.write(streamFrame(i));
            }
            byte[] all = fromPasst.toByteArray();
            int written = 0, received = 0;
            for (int piece = 0; received < 300 && System.nanoTime() < deadline; piece++) {
                if (written < all.length) {
                    int n = Math.min(all.length - written, 1 + (piece * 389) % 6000);
                    MemorySegment s = arena.allocateFrom(JAVA_BYTE, slice(all, written, written + n));
                    long w = Libc.send(peer, s, n, 0);
                    written += (int) Math.max(w, 0);
                }
                int got;
                while ((got = backend.receive(into)) > 0) {
                    assertThat(into.asSlice(0, got).toArray(JAVA_BYTE)).as("received frame %d", received)
                            .isEqualTo(streamFrame(received));
                    received++;
                }
                if (written == all.length) {
                    Poller.waitReadable(backend.readable(), 10);
                }
            }
            assertThat(received).isEqualTo(300);
        }
        HostResources.now().assertNothingLeftSince(before);
    }
}
