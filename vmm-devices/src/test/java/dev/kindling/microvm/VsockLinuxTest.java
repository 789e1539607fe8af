package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import dev.kindling.boot.Initramfs;
import dev.kindling.devices.virtio.vsock.VsockConnection;
import dev.kindling.devices.virtio.vsock.VsockListener;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.StopReason;
import dev.kindling.testing.BoundedProcess;
import dev.kindling.testing.HostResources;
import dev.kindling.testing.Require;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.SocketException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A Linux guest's own virtio-vsock driver against Kindling's device and host side, in one boot. The
 * guest's /init is {@code guests/linux/vsockguest.c} (static, built here): echo, a sink that never
 * reads, a server that closes abruptly and a command server (see that file). Over that one boot the
 * test moves {@link #TRANSFER} bytes each way with matching checksums, keeps {@link #CONNECTIONS}
 * connections echoing at once, speaks Firecracker's Unix-socket protocol byte for byte with a plain
 * Java socket (refusals included), has the guest open connections to a {@code Vsock.listen} port, to
 * {@code <uds_path>_<port>} and to nobody, and puts it through the faults users of Firecracker and
 * Cloud Hypervisor hit. After all of them the guest still echoes, no device error was recorded, and
 * once the VM is closed nothing (descriptor, thread, socket file) is left.
 */
@Timeout(3600)
class VsockLinuxTest {
    private static final long CID = 3;
    private static final int ECHO = 5000, SINK = 5001, ABRUPT = 5002, COMMAND = 5003;
    /** Ports nobody listens on, in the guest and on the host. */
    private static final int GUEST_NOBODY = 4999, HOST_NOBODY = 6002;
    private static final int HOST_LISTEN = 6000, HOST_UDS = 6001, HOST_FLOOD = 6003;
    /** Bytes each way of the checksummed transfers. */
    private static final long TRANSFER = 64L << 20;
    private static final int CONNECTIONS = 64;
    /** Clients dialing at once, as soon as the VM starts: half through the Java API, half through the Unix socket. */
    private static final int DIALERS = 16;
    /** The guest's abrupt server reads this much (ABRUPT_BYTES there), then closes. */
    private static final int ABRUPT_BYTES = 4096;
    private static final int PARTIAL = 256 << 10;
    /** A boot takes 1-5 minutes here, where guest kernel code is emulated and other work loads the host. */
    private static final Duration BOOT = Duration.ofMinutes(20);
    private static final Duration STEP = Duration.ofMinutes(5);
    /** The transfers move about a MiB a second or less here (guest kernel code is emulated). */
    private static final Duration TRANSFER_LIMIT = Duration.ofMinutes(40);
    private static final long STREAM_SEED = 0x9e3779b97f4a7c15L;
    private static final Pattern OK_LINE = Pattern.compile("OK (\\d+)\n");

    @TempDir
    Path tmp;

    private ExecutorService pool;

    @Test
    void linuxGuestServesVsockAndSurvivesTheFaults() throws Exception {
        TestKernel k = TestKernel.locate();
        Path cpio = initramfs(buildGuest());
        Path uds = tmp.resolve("v.sock");
        String cmdline = k.cmdline() + " quiet percpu_alloc=page tsc=reliable vg_mode=serve";
        List<String> timings = new ArrayList<>();
        long seed = new SecureRandom().nextLong(); // before the count: the JDK keeps its random devices open
        // and NIO keeps one socket of its own for closing channels, made when the first one is used
        SocketChannel.open(StandardProtocolFamily.UNIX).close();
        List<String> fdsBefore = fdTargets();
        HostResources before = HostResources.now();
        pool = Executors.newCachedThreadPool();
        try {
            try (Microvm vm = Microvm.builder().name("vsock-linux").memoryMib(64).kernel(k.vmlinux()).initrd(cpio)
                    .cmdline(cmdline).vsock(CID, uds).build()) {
                long t0 = System.nanoTime();
                vm.start();
                List<Future<String>> burst = dialRightAfterBoot(vm, uds);
                assertThat(vm.console().awaitText("VSOCKGUEST-READY", BOOT)).as("guest ready; console:\n%s", vm.console().text())
                        .isTrue();
                timings.add(progress(String.format("boot to ready %.0f s", (System.nanoTime() - t0) / 1e9)));
                long r0 = System.nanoTime();
                try (VsockConnection c = vm.vsock().connect(ECHO, STEP)) {
                    assertThat(within(STEP, "first echo", () -> echoOn(c, "first"))).isEqualTo("first");
                } catch (IOException e) {
                    fail("the guest's echo server does not answer: " + e.getMessage() + "; console:\n" + vm.console().text(), e);
                }
                timings.add(progress(String.format("first echo %.1f s after ready", (System.nanoTime() - r0) / 1e9)));
                checkBurst(burst);

                progress("burst dialers done");
                unixSocketProtocol(uds);
                progress("Unix-socket protocol done");
                manyConnectionsAtOnce(vm);
                progress(CONNECTIONS + " connections done");
                try (VsockConnection c = vm.vsock().connect(COMMAND, STEP)) {
                    timings.add(progress(hostToGuest(c, seed)));
                    timings.add(progress(guestToHost(c)));
                    guestInitiated(vm, c, uds);
                    progress("guest-initiated connections done");
                    brokenPipe(vm, c);
                    progress("broken pipe done");
                }
                guestNeverReads(vm);
                progress("guest that never reads done");
                guestClosesAbruptly(vm);
                progress("guest that closes abruptly done");
                hostClosesMidTransfer(vm);
                progress("host closing mid-transfer done");

                assertThat(echo(vm, "still there after the faults")).isEqualTo("still there after the faults");
                assertThat(echoUds(uds, "and through the Unix socket")).isEqualTo("and through the Unix socket");
                assertThat(vm.deviceErrors()).as("device errors").isEmpty();

                try (VsockConnection c = vm.vsock().connect(COMMAND, STEP)) {
                    c.outputStream().write("REBOOT\n".getBytes(StandardCharsets.US_ASCII));
                    c.outputStream().flush();
                    StopReason why = vm.awaitExit(STEP).orElseThrow(
                            () -> new AssertionError("no exit after REBOOT; console:\n" + vm.console().text()));
                    assertThat(why).as("console:\n%s", vm.console().text()).isEqualTo(new StopReason.Reset(StopReason.ResetCause.I8042));
                }
                timings.add(String.format("whole boot %.0f s", (System.nanoTime() - t0) / 1e9));
            }
        } finally {
            pool.shutdownNow();
            assertThat(pool.awaitTermination(1, TimeUnit.MINUTES)).as("test threads ended").isTrue();
        }
        System.out.println("VsockLinuxTest: " + String.join(", ", timings));
        assertThat(uds).as("the Unix socket is removed with the VM").doesNotExist();
        List<String> fdsAfter = fdTargets();
        if (fdsAfter.size() > fdsBefore.size()) {
            fdsAfter.removeAll(fdsBefore);
            fail("descriptors left open (or reused): " + fdsAfter + "; before: " + fdsBefore);
        }
        // minutes of busy guest I/O: the JVM maps more of its own meanwhile (code cache, arenas), as
        // the 200-cycle busy-disk test allows; descriptors and threads are checked as everywhere
        HostResources.now().assertNothingLeftSince(before, 32);
    }

    /** What this process's descriptors point at (files, sockets, anon inodes), for naming a leak. */
    private static List<String> fdTargets() throws IOException {
        List<String> targets = new ArrayList<>();
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            for (Path fd : fds.toList()) {
                try {
                    targets.add(fd.getFileName() + " -> " + Files.readSymbolicLink(fd));
                } catch (IOException e) {
                    // closed meanwhile (the listing's own descriptor)
                }
            }
        }
        return targets;
    }

    /** Where a run that takes minutes has got to, as it goes. */
    private static String progress(String what) {
        System.out.println("VsockLinuxTest: " + what);
        return what;
    }

    /** guests/out/vsockguest, built by guests/Makefile (it needs a static libc). */
    private static Path buildGuest() throws IOException, InterruptedException {
        Require.that(Require.onPath("gcc") && Require.onPath("make"), "gcc and make are needed (apt-get install gcc make)");
        Path guests = TestGuests.root().resolve("guests");
        BoundedProcess.Result r = BoundedProcess.run(Duration.ofMinutes(2), "make", "-s", "-C", guests.toString(), "out/vsockguest");
        Require.that(r.succeeded() || !r.output().contains("cannot find -lc"), "no static libc (apt-get install libc6-dev)");
        assertThat(r.succeeded()).as(r.describe() + ":\n" + r.output()).isTrue();
        return guests.resolve("out/vsockguest");
    }

    /** A fresh archive (faster to unpack than the test initramfs): /dev, /dev/console, /proc, /sys and the program as /init. */
    private Path initramfs(Path program) throws IOException {
        Path cpio = tmp.resolve("vsock.cpio");
        try (OutputStream out = Files.newOutputStream(cpio)) {
            Initramfs.builder().directory("dev").charDevice("dev/console", 5, 1).directory("proc").directory("sys")
                    .file("init", Files.readAllBytes(program), 0755).writeTo(out);
        }
        return cpio;
    }

    /** Runs {@code task} on another thread and waits for it at most {@code limit}. */
    private <T> T within(Duration limit, String what, Callable<T> task) throws Exception {
        Future<T> f = pool.submit(task);
        try {
            return f.get(limit.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            f.cancel(true);
            return fail(what + ": not done within " + limit);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof Exception x) {
                throw x;
            }
            throw e;
        }
    }

    // ---- the burst right after boot ----

    /**
     * As soon as the VM runs, half the dialers call {@code connect(port, timeout)}, which must wait
     * for the guest's server; the other half send {@code CONNECT} on the Unix socket once, which
     * either succeeds or is closed (the guest is not listening yet) but never hangs.
     */
    private List<Future<String>> dialRightAfterBoot(Microvm vm, Path uds) {
        List<Future<String>> burst = new ArrayList<>();
        for (int i = 0; i < DIALERS; i++) {
            String msg = "burst " + i;
            if (i % 2 == 0) {
                burst.add(pool.submit(() -> {
                    try (VsockConnection c = vm.vsock().connect(ECHO, BOOT)) {
                        return echoOn(c, msg);
                    }
                }));
            } else {
                burst.add(pool.submit(() -> {
                    try (SocketChannel s = SocketChannel.open(UnixDomainSocketAddress.of(uds))) {
                        write(s, "CONNECT " + ECHO + "\n");
                        String answer = readUntilNewlineOrEnd(s);
                        if (answer.isEmpty()) {
                            return "refused";
                        }
                        assertThat(answer).matches(OK_LINE);
                        write(s, msg + "\n");
                        return readUntilNewlineOrEnd(s).strip();
                    }
                }));
            }
        }
        return burst;
    }

    private static void checkBurst(List<Future<String>> burst) throws Exception {
        for (int i = 0; i < burst.size(); i++) {
            String got = burst.get(i).get(BOOT.toMillis(), TimeUnit.MILLISECONDS);
            if (i % 2 == 0) {
                assertThat(got).as("Java API dialer %d", i).isEqualTo("burst " + i);
            } else {
                assertThat(got).as("Unix-socket dialer %d", i).isIn("burst " + i, "refused");
            }
        }
    }

    // ---- Firecracker's Unix-socket protocol ----

    private void unixSocketProtocol(Path uds) throws Exception {
        UnixDomainSocketAddress addr = UnixDomainSocketAddress.of(uds);
        within(STEP, "CONNECT and echo", () -> {
            try (SocketChannel s = SocketChannel.open(addr)) {
                write(s, "CONNECT " + ECHO + "\n");
                String ok = readUntilNewlineOrEnd(s);
                Matcher m = OK_LINE.matcher(ok);
                assertThat(m.matches()).as("answer '%s'", ok).isTrue();
                assertThat(Long.parseLong(m.group(1))).as("host port").isGreaterThanOrEqualTo(1L << 30).isLessThan(1L << 32);
                write(s, "byte for byte\n");
                assertThat(readUntilNewlineOrEnd(s)).isEqualTo("byte for byte\n");
            }
            return null;
        });
        within(STEP, "lower-case connect", () -> {
            try (SocketChannel s = SocketChannel.open(addr)) {
                write(s, "connect " + ECHO + "\n");
                assertThat(readUntilNewlineOrEnd(s)).matches(OK_LINE);
            }
            return null;
        });
        for (String bad : List.of("CONNECT five\n", "GET / HTTP/1.0\r\n\r\n", "CONNECT " + "0".repeat(40) + ECHO + "\n",
                "A".repeat(100), "CONNECT " + GUEST_NOBODY + "\n", "CONNECT\n", "CONNECT -1\n")) {
            assertThat(within(STEP, "refusal of " + bad.strip(), () -> refused(addr, bad)))
                    .as("what '%s' got back", bad.strip()).isEmpty();
        }
        // a client that goes away before its newline: nothing to see here but that the VM carries on
        try (SocketChannel s = SocketChannel.open(addr)) {
            write(s, "CONNECT " + ECHO);
        }
        assertThat(echoUds(uds, "after a client left mid-line")).isEqualTo("after a client left mid-line");
    }

    /** Sends {@code line} and returns all that came back until the server closed or reset it (the test wants nothing). */
    private static String refused(UnixDomainSocketAddress addr, String line) throws IOException {
        try (SocketChannel s = SocketChannel.open(addr)) {
            write(s, line);
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            ByteBuffer b = ByteBuffer.allocate(256);
            try {
                while (s.read(b.clear()) >= 0) {
                    got.write(b.array(), 0, b.position());
                }
            } catch (SocketException e) {
                // closed with bytes of ours unread: the reset is the refusal
            }
            return got.toString(StandardCharsets.ISO_8859_1);
        }
    }

    private String echoUds(Path uds, String msg) throws Exception {
        return within(STEP, "echo over the Unix socket", () -> {
            try (SocketChannel s = SocketChannel.open(UnixDomainSocketAddress.of(uds))) {
                write(s, "CONNECT " + ECHO + "\n");
                assertThat(readUntilNewlineOrEnd(s)).matches(OK_LINE);
                write(s, msg + "\n");
                return readUntilNewlineOrEnd(s).strip();
            }
        });
    }

    private static void write(SocketChannel s, String text) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(text.getBytes(StandardCharsets.US_ASCII));
        while (b.hasRemaining()) {
            s.write(b);
        }
    }

    /** Bytes up to and including the next newline, or up to the end of stream; one byte per read, so nothing after the line is taken. */
    private static String readUntilNewlineOrEnd(SocketChannel s) throws IOException {
        StringBuilder line = new StringBuilder();
        ByteBuffer b = ByteBuffer.allocate(1);
        while (line.length() < 4096 && s.read(b.clear()) > 0) {
            line.append((char) (b.get(0) & 0xff));
            if (b.get(0) == '\n') {
                break;
            }
        }
        return line.toString();
    }

    // ---- the Java API ----

    private String echo(Microvm vm, String msg) throws Exception {
        return within(STEP, "echo", () -> {
            try (VsockConnection c = vm.vsock().connect(ECHO, STEP)) {
                return echoOn(c, msg);
            }
        });
    }

    private static String echoOn(VsockConnection c, String msg) throws IOException {
        c.outputStream().write((msg + "\n").getBytes(StandardCharsets.US_ASCII));
        c.outputStream().flush();
        return readLine(c.inputStream());
    }

    /** A line without its newline; at end of stream what came before it. */
    private static String readLine(InputStream in) throws IOException {
        StringBuilder line = new StringBuilder();
        int b;
        while (line.length() < 4096 && (b = in.read()) >= 0 && b != '\n') {
            line.append((char) b);
        }
        return line.toString();
    }

    private static void send(VsockConnection c, String line) throws IOException {
        c.outputStream().write((line + "\n").getBytes(StandardCharsets.US_ASCII));
        c.outputStream().flush();
    }

    private void manyConnectionsAtOnce(Microvm vm) throws Exception {
        within(STEP, CONNECTIONS + " connections", () -> {
            List<VsockConnection> open = new ArrayList<>();
            try {
                for (int i = 0; i < CONNECTIONS; i++) {
                    open.add(vm.vsock().connect(ECHO, STEP)); // retried: a loaded host can keep the guest past the device's 2 s answer time
                }
                assertThat(vm.vsock().device().connections()).isGreaterThanOrEqualTo(CONNECTIONS);
                byte[][] sent = new byte[CONNECTIONS][];
                SplittableRandom r = new SplittableRandom(7);
                for (int i = 0; i < CONNECTIONS; i++) {
                    sent[i] = new byte[1000 + 37 * i];
                    r.nextBytes(sent[i]);
                    open.get(i).outputStream().write(sent[i]);
                }
                for (int i = 0; i < CONNECTIONS; i++) {
                    assertThat(open.get(i).inputStream().readNBytes(sent[i].length)).as("echo on connection %d", i).isEqualTo(sent[i]);
                }
                assertThat(open).allMatch(VsockConnection::isOpen);
            } finally {
                open.forEach(VsockConnection::close);
            }
            return null;
        });
    }

    private static long fnv1a(long h, byte[] b, int len) {
        for (int i = 0; i < len; i++) {
            h = (h ^ (b[i] & 0xff)) * 0x100000001b3L;
        }
        return h;
    }

    /** The guest's {@code SEND} stream: xorshift64 states, each little-endian. */
    private static final class GuestStream {
        private long x = STREAM_SEED;

        void next(byte[] out) {
            for (int i = 0; i < out.length; i += 8) {
                long v = x;
                for (int b = 0; b < 8; b++) {
                    out[i + b] = (byte) (v >>> (8 * b));
                }
                v ^= v << 13;
                v ^= v >>> 7;
                v ^= v << 17;
                x = v;
            }
        }
    }

    private String hostToGuest(VsockConnection c, long seed) throws Exception {
        return within(TRANSFER_LIMIT, "host to guest", () -> {
            SplittableRandom r = new SplittableRandom(seed);
            byte[] chunk = new byte[64 << 10];
            long h = 0xcbf29ce484222325L, t0 = System.nanoTime();
            send(c, "RECV " + TRANSFER);
            for (long done = 0; done < TRANSFER; done += chunk.length) {
                r.nextBytes(chunk);
                h = fnv1a(h, chunk, chunk.length);
                c.outputStream().write(chunk);
                if ((done + chunk.length) % (4 << 20) == 0) {
                    progress(String.format("host->guest %d MiB in %.0f s", (done + chunk.length) >> 20, (System.nanoTime() - t0) / 1e9));
                }
            }
            c.outputStream().flush();
            assertThat(readLine(c.inputStream())).as("the guest's checksum").isEqualTo(String.format("RECV %d %016x", TRANSFER, h));
            double s = (System.nanoTime() - t0) / 1e9;
            return String.format("%d MiB host->guest %.0f s (%.2f MiB/s)", TRANSFER >> 20, s, (TRANSFER >> 20) / s);
        });
    }

    private String guestToHost(VsockConnection c) throws Exception {
        return within(TRANSFER_LIMIT, "guest to host", () -> {
            GuestStream expected = new GuestStream();
            byte[] want = new byte[64 << 10];
            long t0 = System.nanoTime();
            send(c, "SEND " + TRANSFER);
            InputStream in = c.inputStream();
            for (long done = 0; done < TRANSFER; done += want.length) {
                expected.next(want);
                byte[] got = in.readNBytes(want.length);
                if (!Arrays.equals(got, want)) {
                    fail("guest->host stream differs in the 64 KiB at " + done + " (" + got.length + " bytes read)");
                }
                if ((done + want.length) % (4 << 20) == 0) {
                    progress(String.format("guest->host %d MiB in %.0f s", (done + want.length) >> 20, (System.nanoTime() - t0) / 1e9));
                }
            }
            double s = (System.nanoTime() - t0) / 1e9;
            return String.format("%d MiB guest->host %.0f s (%.2f MiB/s)", TRANSFER >> 20, s, (TRANSFER >> 20) / s);
        });
    }

    /** The guest dials a {@code Vsock.listen} port, a {@code <uds_path>_<port>} listener of this test, and a port nobody has. */
    private void guestInitiated(Microvm vm, VsockConnection commands, Path uds) throws Exception {
        try (VsockListener l = vm.vsock().listen(HOST_LISTEN)) {
            send(commands, "DIAL " + HOST_LISTEN);
            within(STEP, "guest to a Vsock.listen port", () -> {
                try (VsockConnection c = l.accept(STEP).orElseThrow(() -> new AssertionError("the guest did not connect"))) {
                    assertThat(c.localPort()).isEqualTo(HOST_LISTEN);
                    assertThat(readLine(c.inputStream())).isEqualTo("hello " + HOST_LISTEN);
                    send(c, "welcome " + HOST_LISTEN);
                }
                return null;
            });
            assertThat(within(STEP, "DIAL reply", () -> readLine(commands.inputStream())))
                    .isEqualTo("DIAL " + HOST_LISTEN + " OK welcome " + HOST_LISTEN);
        }

        Path side = Path.of(uds + "_" + HOST_UDS);
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(side));
            send(commands, "DIAL " + HOST_UDS);
            within(STEP, "guest to <uds_path>_" + HOST_UDS, () -> {
                try (SocketChannel s = server.accept()) {
                    assertThat(readUntilNewlineOrEnd(s)).isEqualTo("hello " + HOST_UDS + "\n");
                    write(s, "welcome uds " + HOST_UDS + "\n");
                }
                return null;
            });
            assertThat(within(STEP, "DIAL reply", () -> readLine(commands.inputStream())))
                    .isEqualTo("DIAL " + HOST_UDS + " OK welcome uds " + HOST_UDS);
        } finally {
            Files.deleteIfExists(side);
        }

        send(commands, "DIAL " + HOST_NOBODY);
        assertThat(within(STEP, "DIAL reply", () -> readLine(commands.inputStream())))
                .as("a guest connecting where nobody listens gets a RST").matches("DIAL " + HOST_NOBODY + " ERR (ECONNRESET|ECONNREFUSED)");
    }

    /** The host side goes away while the guest sends: the guest's write fails (it does not hang), the VM carries on. */
    private void brokenPipe(Microvm vm, VsockConnection commands) throws Exception {
        try (VsockListener l = vm.vsock().listen(HOST_FLOOD)) {
            send(commands, "FLOOD " + HOST_FLOOD);
            within(STEP, "the guest's flood", () -> {
                try (VsockConnection c = l.accept(STEP).orElseThrow(() -> new AssertionError("the guest did not connect"))) {
                    assertThat(c.inputStream().readNBytes(PARTIAL)).hasSize(PARTIAL);
                }
                return null;
            });
            String reply = within(STEP, "FLOOD reply", () -> readLine(commands.inputStream()));
            Matcher m = Pattern.compile("FLOOD " + HOST_FLOOD + " ERR (EPIPE|ECONNRESET|ENOTCONN) (\\d+)").matcher(reply);
            assertThat(m.matches()).as("FLOOD reply '%s'", reply).isTrue();
            assertThat(Long.parseLong(m.group(2))).isGreaterThanOrEqualTo(PARTIAL);
        }
    }

    /** The host's writer stops once the guest's buffer is full (credit), and closing the connection ends it. */
    private void guestNeverReads(Microvm vm) throws Exception {
        AtomicLong written = new AtomicLong();
        VsockConnection c = within(STEP, "connect to the sink", () -> vm.vsock().connect(SINK, STEP));
        Future<Throwable> writer = pool.submit(() -> {
            byte[] chunk = new byte[64 << 10];
            try {
                for (int i = 0; i < 1024; i++) { // 64 MiB at most: far more than any buffer on the way
                    c.outputStream().write(chunk);
                    written.addAndGet(chunk.length);
                }
                return null;
            } catch (IOException e) {
                return e;
            }
        });
        // stalled: no progress over two seconds, looked at for at most STEP
        long deadline = System.nanoTime() + STEP.toNanos(), last = -1;
        int still = 0;
        while (still < 8 && System.nanoTime() < deadline && !writer.isDone()) {
            Thread.sleep(250);
            long now = written.get();
            still = now == last ? still + 1 : 0;
            last = now;
        }
        assertThat(writer.isDone()).as("the writer blocks when the guest does not read").isFalse();
        assertThat(written.get()).as("bytes taken before the writer blocked").isLessThan(16L << 20);
        within(STEP, "close of a connection whose writer is blocked", () -> {
            c.close();
            return null;
        });
        assertThat(writer.get(STEP.toMillis(), TimeUnit.MILLISECONDS)).as("the blocked write ends with an exception").isInstanceOf(IOException.class);
    }

    /** The guest reads a little and closes with the host still writing: the host's writes fail, its reads end. */
    private void guestClosesAbruptly(Microvm vm) throws Exception {
        try (VsockConnection c = within(STEP, "connect to the abrupt server", () -> vm.vsock().connect(ABRUPT, STEP))) {
            Throwable ended = within(STEP, "writes to a guest that closed", () -> {
                byte[] chunk = new byte[64 << 10];
                try {
                    for (int i = 0; i < 1024; i++) {
                        c.outputStream().write(chunk);
                    }
                    return null;
                } catch (IOException e) {
                    return e;
                }
            });
            assertThat(ended).as("a write after the guest closed fails").isInstanceOf(IOException.class);
            assertThat(vm.console().awaitText("VSOCKGUEST abrupt-close " + ABRUPT_BYTES, STEP)).isTrue();
            Object end = within(STEP, "read after the guest closed", () -> {
                try {
                    return c.inputStream().read();
                } catch (IOException e) {
                    return e;
                }
            });
            assertThat(end).as("end of stream or an error").satisfiesAnyOf(e -> assertThat(e).isEqualTo(-1),
                    e -> assertThat(e).isInstanceOf(IOException.class));
        }
    }

    /** The host closes in the middle of a transfer each way: the guest sees the short stream or a failed write. */
    private void hostClosesMidTransfer(Microvm vm) throws Exception {
        within(STEP, "close mid-RECV", () -> {
            try (VsockConnection c = vm.vsock().connect(COMMAND, STEP)) {
                send(c, "RECV " + TRANSFER);
                c.outputStream().write(new byte[PARTIAL]);
            }
            return null;
        });
        assertThat(vm.console().awaitText("VSOCKGUEST recv-short " + PARTIAL + " " + TRANSFER, STEP))
                .as("the guest got every byte sent before the close; console:\n%s", vm.console().text()).isTrue();
        within(STEP, "close mid-SEND", () -> {
            try (VsockConnection c = vm.vsock().connect(COMMAND, STEP)) {
                send(c, "SEND " + TRANSFER);
                assertThat(c.inputStream().readNBytes(PARTIAL)).hasSize(PARTIAL);
            }
            return null;
        });
        assertThat(vm.console().awaitText(Pattern.compile("VSOCKGUEST send-error (EPIPE|ECONNRESET|ENOTCONN) \\d+"), STEP))
                .as("console:\n%s", vm.console().text()).isPresent();
    }
}
