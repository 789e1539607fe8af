package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.tuple;

import dev.kindling.boot.Initramfs;
import dev.kindling.devices.virtio.net.MacAddress;
import dev.kindling.devices.virtio.net.NetSwitch;
import dev.kindling.devices.virtio.net.NetworkInterface;
import dev.kindling.devices.virtio.net.PasstOptions;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.StopReason;
import dev.kindling.testing.BoundedProcess;
import dev.kindling.testing.Require;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Linux guests exchange TCP data over Kindling's virtio-net with each backend, in two boots at once.
 * Both run {@code guests/linux/netguest.c} as {@code /init}. VM A has three interfaces: a tap the test
 * moves into a network namespace of its own, where the same program serves an echo on the tap's host
 * side; passt, whose gateway address reaches a server this JVM runs on the host's loopback; and a port
 * of an in-process switch, on which it serves VM B's echo. Each exchange sends a pattern, reads it
 * back, and compares; both sides' checksums must match the pattern's, and the loopback server checks
 * each byte it gets, so a wrong echo says which way it went wrong. The guests' traffic goes only
 * into the namespace, to the loopback (through passt, which offers no DNS server) or to each other.
 *
 * <p>The passt exchange is {@code echowait}: the guest shuts down writing only once the whole echo is
 * back. The passt of Debian 12 (2023-03) sends stale bytes to a guest that half-closed while data
 * still came to it (see {@link dev.kindling.devices.virtio.net.PasstBackend}); with the plain
 * {@code echo} it did so in about half the runs here.
 */
@Timeout(value = 50, unit = TimeUnit.MINUTES)
class NetLinuxTest {
    /** A boot takes 1-5 minutes here, more when the host is loaded; the exchanges follow the boot. */
    private static final Duration RUN = Duration.ofMinutes(35);
    private static final Duration TOOL = Duration.ofMinutes(1);
    /** Guest kernel code is emulated here (TCP at a few KiB/s): enough for many segments and windows. */
    private static final int BYTES = 128 * 1024;
    /**
     * How long a guest job may take, connecting included, in seconds: VM A's three jobs run one after
     * the other, and all of them must fit in {@link #RUN} with the boot, so that a failed exchange is
     * reported by the guest rather than by a timeout here.
     */
    private static final int JOB_SECONDS = 480;
    private static final int SWITCH_PORT = 5000, TAP_PORT = 5001;
    private static final MacAddress MAC_TAP = MacAddress.parse("52:54:00:6b:00:01");
    private static final MacAddress MAC_PASST = MacAddress.parse("52:54:00:6b:00:02");
    private static final MacAddress MAC_SWITCH_A = MacAddress.parse("52:54:00:6b:00:03");
    private static final MacAddress MAC_SWITCH_B = MacAddress.parse("52:54:00:6b:00:04");
    private static final Pattern OK = Pattern.compile("NETGUEST-OK (\\S+) (\\S+) (\\d+) ([0-9a-f]{16}) (\\d+)");

    @TempDir
    Path tmp;

    /** The pattern's byte i, as netguest.c makes it. */
    static byte pattern(long i) {
        return (byte) ((i ^ (i >>> 8) ^ (i >>> 16)) * 13 + 7);
    }

    /** 64-bit FNV-1a, as netguest.c sums. */
    static long fnv(long h, byte b) {
        return (h ^ (b & 0xff)) * 0x100000001b3L;
    }

    static String patternSum(long bytes) {
        long h = 0xcbf29ce484222325L;
        for (long i = 0; i < bytes; i++) {
            h = fnv(h, pattern(i));
        }
        return HexFormat.of().toHexDigits(h);
    }

    /** One {@code NETGUEST-OK} line: bytes and sum by label. */
    record Exchange(String label, String mode, long bytes, String sum) {}

    static List<Exchange> exchanges(String console) {
        List<Exchange> l = new ArrayList<>();
        Matcher m = OK.matcher(console);
        while (m.find()) {
            l.add(new Exchange(m.group(1), m.group(2), Long.parseLong(m.group(3)), m.group(4)));
        }
        return l;
    }

    private static BoundedProcess.Result tool(String... command) throws IOException, InterruptedException {
        BoundedProcess.Result r = BoundedProcess.run(TOOL, command);
        assertThat(r.succeeded()).as(r.describe() + ":\n" + r.output()).isTrue();
        return r;
    }

    /** guests/out/netguest, built by make; skips where there is no static libc to link it with. */
    private static Path netguest() throws IOException, InterruptedException {
        Require.that(Require.onPath("gcc") && Require.onPath("make"), "gcc and make are needed to build guests/out/netguest");
        BoundedProcess.Result libc = BoundedProcess.run(TOOL, "gcc", "-print-file-name=libc.a");
        Require.that(libc.succeeded() && Path.of(libc.output().strip()).isAbsolute(),
                "no static libc for guests/out/netguest (apt-get install libc6-dev)");
        Path guests = TestGuests.root().resolve("guests");
        BoundedProcess.Result make = BoundedProcess.run(Duration.ofMinutes(5), "make", "-s", "-C", guests.toString(), "out/netguest");
        assertThat(make.succeeded()).as(make.describe() + ":\n" + make.output()).isTrue();
        return guests.resolve("out/netguest");
    }

    /** An initramfs with /dev (devtmpfs' mount point), /dev/console (init's streams), /proc and /init. */
    private Path initramfs(Path program) throws IOException {
        Path cpio = tmp.resolve("netguest.cpio");
        try (OutputStream out = Files.newOutputStream(cpio)) {
            Initramfs.builder().directory("dev").charDevice("dev/console", 5, 1).directory("proc")
                    .file("init", Files.readAllBytes(program), 0755).writeTo(out);
        }
        return cpio;
    }

    /**
     * Accepts one connection on the loopback and echoes it, returning the count and sum of what came,
     * with the mode naming the offset of the first byte that differs from the pattern, if one does.
     */
    private static CompletableFuture<Exchange> loopbackEcho(ServerSocket server) {
        CompletableFuture<Exchange> result = new CompletableFuture<>();
        Thread.ofPlatform().name("net-test-loopback-echo").daemon().start(() -> {
            try (Socket s = server.accept()) {
                s.setSoTimeout((int) RUN.toMillis());
                InputStream in = s.getInputStream();
                OutputStream out = s.getOutputStream();
                byte[] buf = new byte[16384];
                long got = 0, h = 0xcbf29ce484222325L, firstWrong = -1;
                for (int n; got <= BYTES && (n = in.read(buf)) > 0; ) {
                    for (int i = 0; i < n; i++) {
                        h = fnv(h, buf[i]);
                        if (firstWrong < 0 && buf[i] != pattern(got + i)) {
                            firstWrong = got + i;
                        }
                    }
                    got += n;
                    out.write(buf, 0, n);
                }
                s.shutdownOutput();
                result.complete(new Exchange("loopback", firstWrong < 0 ? "echo" : "wrong from byte " + firstWrong, got,
                        HexFormat.of().toHexDigits(h)));
            } catch (IOException | RuntimeException e) {
                result.completeExceptionally(e);
            }
        });
        return result;
    }

    private static String cmdline(TestKernel k, String... words) {
        return k.cmdline() + " quiet percpu_alloc=page tsc=reliable ng.wait=" + JOB_SECONDS + " " + String.join(" ", words);
    }

    @Test
    void linuxGuestsExchangeTcpOverTapPasstAndTheSwitch() throws Exception {
        TestKernel k = TestKernel.locate();
        Require.that(Require.onPath("ip"), "ip is not installed (iproute2)");
        Require.that(Require.onPath("passt"), "passt is not installed (apt-get install passt)");
        Path cpio = initramfs(netguest());
        Path program = TestGuests.root().resolve("guests/out/netguest");
        String id = HexFormat.of().formatHex(new SecureRandom().generateSeed(4));
        String ns = "kdns-" + id, tap = "kdtap" + id;
        BoundedProcess.Result add = BoundedProcess.run(TOOL, "ip", "netns", "add", ns);
        Require.that(add.succeeded(), "cannot create a network namespace (needs CAP_NET_ADMIN): " + add.output().strip());
        Thread peer = null;
        try (ServerSocket loopback = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
                NetSwitch sw = new NetSwitch("t")) {
            loopback.setSoTimeout((int) RUN.toMillis());
            CompletableFuture<Exchange> loopbackResult = loopbackEcho(loopback);
            String sum = patternSum(BYTES);
            try (Microvm a = Microvm.builder().name("net-a").memoryMib(64).kernel(k.vmlinux()).initrd(cpio)
                    .cmdline(cmdline(k, "ng.if=" + MAC_TAP + ",10.0.1.2/24", "ng.if=" + MAC_PASST + ",10.0.2.15/24",
                            "ng.if=" + MAC_SWITCH_A + ",10.0.3.1/24",
                            "ng.job=serve,10.0.3.1:" + SWITCH_PORT + "," + BYTES + ",switch-server",
                            "ng.job=echo,10.0.1.1:" + TAP_PORT + "," + BYTES + ",tap",
                            "ng.job=echowait,10.0.2.2:" + loopback.getLocalPort() + "," + BYTES + ",passt"))
                    .virtioNet(NetworkInterface.tap("tap", tap).withMac(MAC_TAP))
                    .virtioNet(NetworkInterface.passt("passt", PasstOptions.defaults()
                            .withAddress("10.0.2.15", 24, "10.0.2.2").withDns(false)).withMac(MAC_PASST))
                    .virtioNet(NetworkInterface.onSwitch("switch", sw).withMac(MAC_SWITCH_A)).build();
                    Microvm b = Microvm.builder().name("net-b").memoryMib(64).kernel(k.vmlinux()).initrd(cpio)
                            .cmdline(cmdline(k, "ng.if=" + MAC_SWITCH_B + ",10.0.3.2/24",
                                    "ng.job=echo,10.0.3.1:" + SWITCH_PORT + "," + BYTES + ",switch-client"))
                            .virtioNet(NetworkInterface.onSwitch("switch", sw).withMac(MAC_SWITCH_B)).build()) {
                // Kindling opened (and made) the tap in this namespace; its host side lives in the test's
                tool("ip", "link", "set", tap, "netns", ns);
                tool("ip", "-n", ns, "addr", "add", "10.0.1.1/24", "dev", tap);
                tool("ip", "-n", ns, "link", "set", tap, "up");
                CompletableFuture<BoundedProcess.Result> served = new CompletableFuture<>();
                // the peer waits as long as the VMs may take: its tap job comes after the boots and the switch job
                peer = Thread.ofPlatform().name("net-test-namespace-peer").daemon().start(() -> {
                    try {
                        served.complete(BoundedProcess.run(RUN, "ip", "netns", "exec", ns, program.toString(),
                                "ng.wait=" + RUN.toSeconds(), "ng.job=serve,10.0.1.1:" + TAP_PORT + "," + BYTES + ",host"));
                    } catch (IOException | InterruptedException | RuntimeException e) {
                        served.completeExceptionally(e);
                    }
                });
                a.start();
                b.start();
                StopReason whyB = b.awaitExit(RUN).orElseThrow(() -> new AssertionError("VM B did not end within " + RUN
                        + "; console:\n" + b.console().text() + "\nVM A's console:\n" + a.console().text()));
                StopReason whyA = a.awaitExit(RUN).orElseThrow(() -> new AssertionError("VM A did not end within " + RUN
                        + "; console:\n" + a.console().text() + "\nVM B's console:\n" + b.console().text()));
                String consoleA = a.console().text(), consoleB = b.console().text();
                String both = "\nVM A:\n" + consoleA + "\nVM B:\n" + consoleB + "\nthe loopback server behind passt: "
                        + loopbackResult.getNow(null);
                assertThat(whyA).as("VM A's exit" + both).isEqualTo(new StopReason.Reset(StopReason.ResetCause.I8042));
                assertThat(whyB).as("VM B's exit" + both).isEqualTo(new StopReason.Reset(StopReason.ResetCause.I8042));
                assertThat(consoleA).as("VM A's jobs" + both).doesNotContain("NETGUEST-ERROR").contains("NETGUEST-DONE 0");
                assertThat(consoleB).as("VM B's jobs" + both).doesNotContain("NETGUEST-ERROR").contains("NETGUEST-DONE 0");
                assertThat(exchanges(consoleA)).as("VM A" + both).extracting(Exchange::label, Exchange::bytes, Exchange::sum)
                        .containsExactlyInAnyOrder(
                                tuple("switch-server", (long) BYTES, sum),
                                tuple("tap", (long) BYTES, sum),
                                tuple("passt", (long) BYTES, sum));
                assertThat(exchanges(consoleB)).as("VM B" + both).extracting(Exchange::label, Exchange::bytes, Exchange::sum)
                        .containsExactly(tuple("switch-client", (long) BYTES, sum));
                assertThat(a.deviceErrors()).as("VM A's device errors").isEmpty();
                assertThat(b.deviceErrors()).as("VM B's device errors").isEmpty();

                BoundedProcess.Result host = served.get(TOOL.toSeconds(), TimeUnit.SECONDS);
                assertThat(host.succeeded()).as("the namespace's server: " + host.describe() + "\n" + host.output()).isTrue();
                assertThat(exchanges(host.output())).as(host.output()).extracting(Exchange::label, Exchange::bytes, Exchange::sum)
                        .containsExactly(tuple("host", (long) BYTES, sum));
                assertThat(loopbackResult.get(TOOL.toSeconds(), TimeUnit.SECONDS))
                        .as("what the loopback server behind passt received")
                        .isEqualTo(new Exchange("loopback", "echo", BYTES, sum));
            }
        } finally {
            if (peer != null) {
                peer.interrupt(); // BoundedProcess kills the server if it still runs
                peer.join(TOOL.toMillis());
            }
            BoundedProcess.run(TOOL, "ip", "netns", "del", ns);
        }
    }
}
