package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** {@code kindling bench vsock}: its arguments, its initramfs, the host half of its guest protocol, and its table. */
class VsockBenchTest {
    @TempDir
    Path tmp;

    private static int kindling(ByteArrayOutputStream err, String... args) {
        return Kindling.run(List.of(args), new ByteArrayInputStream(new byte[0]), new PrintStream(new ByteArrayOutputStream()),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    @Test
    void badArgumentsAreUsageErrorsBeforeAnythingIsInstalledOrRun() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        assertThat(kindling(err, "bench", "vsock", "--runs", "0")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --runs must be at least 1")
                .contains("kindling bench vsock [--runs N] [--kib N] [--echoes N]");
        err.reset();
        assertThat(kindling(err, "bench", "vsock", "--kib", "100")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --kib must be a multiple of 64");
        err.reset();
        assertThat(kindling(err, "bench", "vsock", "--echoes", "0")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --echoes must be between 1 and 100000");
        err.reset();
        assertThat(kindling(err, "bench", "vsock", "--echoes", "many")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --echoes takes a whole number, got 'many'");
        err.reset();
        assertThat(kindling(err, "bench", "vsock", "now")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: bench vsock takes no arguments besides its options");
        assertThat(VsockBench.options(List.of())).isEqualTo(new VsockBench.Options(3, 1024, 50));
        assertThat(VsockBench.options(List.of("--kib=128", "--runs", "1", "--echoes", "7"))).isEqualTo(new VsockBench.Options(1, 128, 7));
    }

    @Test
    void initramfsHoldsTheMountPointsAndTheProgramAsInit() throws Exception {
        Path cpio = tmp.resolve("initramfs.cpio");
        byte[] program = "\u007fELF vsockguest".getBytes(StandardCharsets.ISO_8859_1);
        VsockBench.writeInitramfs(cpio, program);
        List<BlkBenchTest.Entry> e = BlkBenchTest.readNewc(Files.readAllBytes(cpio));
        assertThat(e).extracting(BlkBenchTest.Entry::name).containsExactly("dev", "dev/console", "proc", "sys", "init", "TRAILER!!!");
        assertThat(e.get(1).mode()).isEqualTo(0020600);
        assertThat(e.get(4).mode()).isEqualTo(0100755);
        assertThat(e.get(4).data()).isEqualTo(program);
    }

    /**
     * The guest program's side of the commands (guests/linux/vsockguest.c), in Java: RECV answers
     * with FNV-1a of what it read (plus {@code hashOffset}, to play a guest that got other bytes),
     * SEND writes the xorshift stream, ECHO echoes, REBOOT ends it.
     */
    private static List<String> fakeGuest(InputStream in, OutputStream out, long hashOffset) throws IOException {
        List<String> commands = new ArrayList<>();
        while (true) {
            StringBuilder sb = new StringBuilder();
            for (int b = in.read(); b != '\n'; b = in.read()) {
                if (b < 0) {
                    return commands;
                }
                sb.append((char) b);
            }
            String[] f = sb.toString().split(" ");
            commands.add(f[0]);
            switch (f[0]) {
                case "ECHO" -> {
                    int k = Integer.parseInt(f[1]), size = Integer.parseInt(f[2]);
                    for (int i = 0; i < k; i++) {
                        out.write(in.readNBytes(size));
                        out.flush();
                    }
                }
                case "RECV" -> {
                    long n = Long.parseLong(f[1]);
                    long h = VsockBench.fnv1a(0xcbf29ce484222325L, in.readNBytes((int) n)) + hashOffset;
                    out.write(String.format("RECV %d %016x\n", n, h).getBytes(StandardCharsets.US_ASCII));
                    out.flush();
                }
                case "SEND" -> {
                    byte[] all = new byte[Integer.parseInt(f[1])];
                    VsockBench.stream(0x9e3779b97f4a7c15L, all);
                    out.write(all);
                    out.flush();
                }
                case "REBOOT" -> {
                    return commands;
                }
                default -> throw new IllegalStateException("unknown command " + f[0]);
            }
        }
    }

    private VsockBench.Sample sessionWith(long hashOffset, List<String> seen) throws Exception {
        Path sock = tmp.resolve("guest-" + hashOffset + ".sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(sock));
            CompletableFuture<List<String>> guest = CompletableFuture.supplyAsync(() -> {
                try (SocketChannel s = server.accept()) {
                    return fakeGuest(Channels.newInputStream(s), Channels.newOutputStream(s), hashOffset);
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                }
            });
            try (SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(sock))) {
                return VsockBench.session(Channels.newInputStream(c), Channels.newOutputStream(c), new VsockBench.Options(1, 192, 5));
            } finally {
                seen.addAll(guest.get(1, TimeUnit.MINUTES));
            }
        }
    }

    @Test
    @Timeout(120)
    void sessionRunsTheCommandsAndChecksWhatTheGuestSays() throws Exception {
        List<String> seen = new ArrayList<>();
        VsockBench.Sample s = sessionWith(0, seen);
        assertThat(seen).containsExactly("ECHO", "ECHO", "RECV", "SEND", "REBOOT");
        assertThat(s.hostToGuest()).isPositive();
        assertThat(s.guestToHost()).isPositive();
        assertThat(s.rttMicros()).isPositive();
        assertThatThrownBy(() -> sessionWith(1, new ArrayList<>())).hasMessageStartingWith("the guest's checksum: 'RECV 196608 ");
    }

    @Test
    void streamIsTheGuestsXorshift() {
        byte[] b = new byte[16];
        long next = VsockBench.stream(0x9e3779b97f4a7c15L, b);
        // the seed, little-endian, then its xorshift64 successor (13, 7, 17)
        assertThat(b).startsWith((byte) 0x15, (byte) 0x7c, (byte) 0x4a, (byte) 0x7f, (byte) 0xb9, (byte) 0x79, (byte) 0x37, (byte) 0x9e);
        long x = 0x9e3779b97f4a7c15L;
        x ^= x << 13;
        x ^= x >>> 7;
        x ^= x << 17;
        assertThat(b[8]).isEqualTo((byte) x);
        x ^= x << 13;
        x ^= x >>> 7;
        x ^= x << 17;
        assertThat(next).isEqualTo(x);
    }

    @Test
    void tableHasMediansRatiosAndASummaryLineLast() {
        List<VsockBench.Sample> k = List.of(new VsockBench.Sample(2, 4, 1000), new VsockBench.Sample(4, 8, 3000),
                new VsockBench.Sample(3, 6, 2000));
        List<VsockBench.Sample> q = List.of(new VsockBench.Sample(1, 2, 8000), new VsockBench.Sample(1, 2, 8000),
                new VsockBench.Sample(1, 2, 8000));
        List<String> t = VsockBench.table(k, q, new VsockBench.Options(3, 1024, 50), "vmlinux");
        assertThat(t.get(0)).startsWith("metric (median)");
        assertThat(t.get(1).split("\\s+")).containsExactly("host-to-guest-mib-s", "3.00", "1.00", "3.00");
        assertThat(t.get(2).split("\\s+")).containsExactly("guest-to-host-mib-s", "6.00", "2.00", "3.00");
        assertThat(t.get(3).split("\\s+")).as("round trip: qemu / kindling").containsExactly("rtt-64b-us", "2000.00", "8000.00", "4.00");
        assertThat(t.get(4)).contains("no vhost-vsock").contains("virtio-serial");
        assertThat(t.getLast()).isEqualTo("vsock: host-to-guest-ratio 3.00 guest-to-host-ratio 3.00 rtt-ratio 4.00");
    }
}
