package dev.kindling.sandbox;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.devices.virtio.vsock.VsockConnection;
import dev.kindling.microvm.Microvm;
import dev.kindling.microvm.TestKernel;
import dev.kindling.testing.BoundedProcess;
import dev.kindling.testing.Require;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The guest agent ({@code guest/agent/agent.c}, docs/agent-protocol.md) in a real guest, spoken to
 * frame by frame over raw vsock connections with a codec of the test's own, so the agent is checked
 * against the document rather than against the Java client. One boot serves exec, stdin, signals,
 * files, every malformed frame of the document's Errors section and a client that walks away
 * mid-exec; after all of them the agent still serves a fresh session. A second boot hands over to the
 * agent on an ext4 root disk ({@code kindling.root=}).
 */
@Timeout(3600)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class AgentProtocolLinuxTest {
    private static final int PORT = 52;
    /** A boot takes 1-5 minutes here, where guest kernel code is emulated and other work loads the host. */
    private static final Duration BOOT = Duration.ofMinutes(20);
    /** One session; each fork+exec in the guest costs seconds here. */
    private static final Duration STEP = Duration.ofMinutes(3);
    private static final int HELLO = 1, ERROR = 2, PING = 3, PONG = 4, EXEC = 16, STARTED = 17, STDIN = 18,
            STDOUT = 19, STDERR = 20, SIGNAL = 21, EXIT = 22, PUT = 32, DATA = 33, OK = 34, GET = 35, FILE = 36;
    private static final int ENOENT = 2, EPROTO = 71;
    private static final int MAX_BODY = 1 << 20;

    private static ScheduledExecutorService watchdog;
    private static Microvm vm;

    @TempDir
    Path tmp;

    @BeforeAll
    static void boot() throws Exception {
        TestKernel k = TestKernel.locate();
        Path dir = k.vmlinux().getParent();
        Require.that(Files.exists(dir.resolve("agent")), "the guest in " + dir + " has no agent: rebuild it with scripts/build-guest-kernel.sh");
        watchdog = Executors.newSingleThreadScheduledExecutor();
        vm = Microvm.builder().name("agent-linux").memoryMib(96).kernel(k.vmlinux()).initrd(dir.resolve("initramfs.cpio"))
                .cmdline(k.cmdline() + " quiet percpu_alloc=page kindling.action=agent").vsock(3).build();
        long t0 = System.nanoTime();
        vm.start();
        assertThat(vm.console().awaitText("KINDLING-AGENT-READY 1", BOOT)).as("agent ready; console:\n%s", vm.console().text())
                .isTrue();
        System.out.printf("[agent] boot to KINDLING-AGENT-READY: %.1f s%n", (System.nanoTime() - t0) / 1e9);
    }

    @AfterAll
    static void shutdown() {
        if (vm != null) {
            vm.close();
        }
        if (watchdog != null) {
            watchdog.shutdownNow();
        }
    }

    // ---- exec ----

    @Test
    @Order(1)
    void execKeepsStdoutStderrAndTheExitStatusApart() throws Exception {
        long t0 = System.nanoTime();
        try (Session s = Session.open(vm)) {
            s.hello();
            s.send(EXEC, exec(0, "", List.of("sh", "-c", "echo out; echo err >&2; exit 3"), List.of()));
            Frame started = s.read();
            assertThat(started.type()).as(started.toString()).isEqualTo(STARTED);
            assertThat(started.le().getInt()).isPositive();
            Outcome o = s.untilExit();
            assertThat(o.stdout()).isEqualTo("out\n");
            assertThat(o.stderr()).isEqualTo("err\n");
            assertThat(o.exit()).containsExactly(0, 3);
            s.assertClosed();
        }
        System.out.printf("[agent] exec round trip: %.2f s%n", (System.nanoTime() - t0) / 1e9);
    }

    @Test
    @Order(2)
    void execUsesTheGivenDirectoryAndEnvironment() throws Exception {
        try (Session s = Session.open(vm)) {
            s.hello();
            s.send(EXEC, exec(0, "/proc", List.of("sh", "-c", "pwd; echo \"$FOO $HOME $LANG\"; read x || echo eof"),
                    List.of("FOO=bar", "HOME=/tmp")));
            assertThat(s.read().type()).isEqualTo(STARTED);
            Outcome o = s.untilExit();
            assertThat(o.stdout()).as("cwd, FOO added, HOME replaced, LANG kept, stdin /dev/null")
                    .isEqualTo("/proc\nbar /tmp C.UTF-8\neof\n");
            assertThat(o.exit()).containsExactly(0, 0);
        }
    }

    @Test
    @Order(3)
    void stdinFramesReachTheProcessAndAnEmptyOneClosesIt() throws Exception {
        try (Session s = Session.open(vm)) {
            s.hello();
            s.send(EXEC, exec(1, "", List.of("cat"), List.of()));
            assertThat(s.read().type()).isEqualTo(STARTED);
            s.send(STDIN, bytes("hello "));
            s.send(STDIN, bytes("agent"));
            s.send(STDIN, new byte[0]);
            Outcome o = s.untilExit();
            assertThat(o.stdout()).isEqualTo("hello agent");
            assertThat(o.exit()).containsExactly(0, 0);
        }
    }

    @Test
    @Order(4)
    void signalReachesTheProcessGroup() throws Exception {
        try (Session s = Session.open(vm)) {
            s.hello();
            s.send(EXEC, exec(0, "", List.of("sleep", "1000"), List.of()));
            assertThat(s.read().type()).isEqualTo(STARTED);
            s.send(SIGNAL, new Body().u32(15).bytes());
            assertThat(s.untilExit().exit()).as("killed by SIGTERM").containsExactly(1, 15);
        }
    }

    @Test
    @Order(5)
    void aMissingProgramIsEnoent() throws Exception {
        try (Session s = Session.open(vm)) {
            s.hello();
            s.send(EXEC, exec(0, "", List.of("no-such-program"), List.of()));
            s.assertError(ENOENT);
        }
        try (Session s = Session.open(vm)) {
            s.hello();
            s.send(EXEC, exec(0, "/no/such/dir", List.of("true"), List.of()));
            s.assertError(ENOENT);
        }
    }

    // ---- files ----

    @Test
    @Order(6)
    void putThenGetRoundTripsAFile() throws Exception {
        byte[] data = new byte[MAX_BODY + 12345];
        new SecureRandom().nextBytes(data);
        String path = "/tmp/agent-test/sub/file.bin";
        try (Session s = Session.open(vm)) {
            s.hello();
            s.send(PUT, new Body().u32(0640).str(path).bytes());
            s.send(DATA, Arrays.copyOfRange(data, 0, MAX_BODY));
            s.send(DATA, Arrays.copyOfRange(data, MAX_BODY, data.length));
            s.send(DATA, new byte[0]);
            Frame ok = s.read();
            assertThat(ok.type()).as(ok.toString()).isEqualTo(OK);
            assertThat(ok.body()).isEmpty();
            s.assertClosed();
        }
        try (Session s = Session.open(vm)) {
            s.hello();
            s.send(GET, new Body().str(path).bytes());
            Frame file = s.read();
            assertThat(file.type()).as(file.toString()).isEqualTo(FILE);
            ByteBuffer b = file.le();
            assertThat(b.getLong()).isEqualTo(data.length);
            assertThat(b.getInt()).as("mode").isEqualTo(0640);
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            for (Frame f = s.read(); ; f = s.read()) {
                assertThat(f.type()).isEqualTo(DATA);
                if (f.body().length == 0) {
                    break;
                }
                got.write(f.body());
            }
            assertThat(got.toByteArray()).isEqualTo(data);
            s.assertClosed();
        }
        try (Session s = Session.open(vm)) {
            s.hello();
            s.send(GET, new Body().str("/no/such/file").bytes());
            s.assertError(ENOENT);
        }
    }

    // ---- malformed frames ----

    @Test
    @Order(7)
    void everyMalformedFrameGetsEprotoAndAClosedConnection() throws Exception {
        byte[] goodExec = exec(0, "", List.of("true"), List.of());
        Map<String, byte[]> afterHello = new LinkedHashMap<>();
        afterHello.put("length over 1 MiB", header(MAX_BODY + 1, PING, 0));
        afterHello.put("nonzero reserved", frame(PING, new byte[1], 1));
        afterHello.put("unknown type", frame(99, new byte[0], 0));
        afterHello.put("agent-to-host type from the host", frame(STDOUT, bytes("x"), 0));
        afterHello.put("DATA outside a PUT", frame(DATA, bytes("x"), 0));
        afterHello.put("a second HELLO", frame(HELLO, new Body().u32(1).bytes(), 0));
        afterHello.put("PING over 64 bytes", frame(PING, new byte[65], 0));
        afterHello.put("EXEC body shorter than its fields", frame(EXEC, Arrays.copyOf(goodExec, goodExec.length - 2), 0));
        afterHello.put("EXEC body longer than its fields", frame(EXEC, Arrays.copyOf(goodExec, goodExec.length + 1), 0));
        afterHello.put("string running past the body", frame(EXEC, new Body().u32(0).u32(0).u32(1).u32(100).raw(bytes("sh")).bytes(), 0));
        afterHello.put("string holding a NUL", frame(EXEC, exec(0, "", List.of("s\0h"), List.of()), 0));
        afterHello.put("EXEC with unknown flags", frame(EXEC, exec(2, "", List.of("true"), List.of()), 0));
        afterHello.put("GET body longer than its fields", frame(GET, new Body().str("/init").u32(0).bytes(), 0));
        afterHello.put("STDIN during an EXEC without the stdin flag",
                concat(frame(EXEC, exec(0, "", List.of("sleep", "1000"), List.of()), 0), frame(STDIN, bytes("x"), 0)));
        afterHello.put("PUT interrupted by another type",
                concat(frame(PUT, new Body().u32(0644).str("/tmp/half").bytes(), 0), frame(PING, new byte[0], 0)));
        Map<String, byte[]> first = new LinkedHashMap<>();
        first.put("first frame not HELLO", frame(PING, new byte[0], 0));
        first.put("HELLO of another version", frame(HELLO, new Body().u32(2).bytes(), 0));
        first.put("HELLO body too short", frame(HELLO, new byte[2], 0));
        first.put("HELLO body too long", frame(HELLO, new Body().u32(1).u32(0).bytes(), 0));

        List<String> failures = new ArrayList<>();
        for (boolean hello : List.of(true, false)) {
            for (Map.Entry<String, byte[]> c : (hello ? afterHello : first).entrySet()) {
                try (Session s = Session.open(vm)) {
                    if (hello) {
                        s.hello();
                    }
                    s.sendRaw(c.getValue());
                    Frame f;
                    do {
                        f = s.read();       // a STARTED may come first where the error is in a later frame
                    } while (f.type() == STARTED);
                    ByteBuffer b = f.le();
                    if (f.type() != ERROR || b.getInt() != EPROTO) {
                        failures.add(c.getKey() + ": " + f);
                        continue;
                    }
                    System.out.printf("[agent] %s: ERROR EPROTO \"%s\"%n", c.getKey(), string(b));
                    s.assertClosed();
                } catch (IOException | AssertionError e) {
                    failures.add(c.getKey() + ": " + e);
                }
            }
        }
        assertThat(failures).as("console:\n" + vm.console().text()).isEmpty();
        assertThat(vm.console().text()).doesNotContain("Kernel panic");
        try (Session s = Session.open(vm)) {
            s.hello();
            s.send(PING, bytes("still there"));
            Frame pong = s.read();
            assertThat(pong.type()).isEqualTo(PONG);
            assertThat(new String(pong.body(), StandardCharsets.UTF_8)).isEqualTo("still there");
        }
        assertThat(sleeperPids()).as("the sleep of the STDIN case was killed with its session").isEmpty();
    }

    // ---- a client that walks away ----

    @Test
    @Order(8)
    void aHostThatDisconnectsMidExecTakesTheProcessWithIt() throws Exception {
        int pid;
        try (Session s = Session.open(vm)) {
            s.hello();
            s.send(EXEC, exec(0, "", List.of("sleep", "1000"), List.of()));
            Frame started = s.read();
            assertThat(started.type()).isEqualTo(STARTED);
            pid = started.le().getInt();
            assertThat(processAlive(List.of(pid))).as("sleep %d running", pid).isTrue();
        }
        boolean alive = true;
        for (int attempt = 0; attempt < 10 && alive; attempt++) {
            alive = processAlive(List.of(pid));
        }
        assertThat(alive).as("sleep %d gone after its session closed", pid).isFalse();
    }

    @Test
    @Order(9)
    void pingAnswersAsOftenAsAsked() throws Exception {
        try (Session s = Session.open(vm)) {
            s.hello();
            for (int i = 0; i < 5; i++) {
                byte[] b = bytes("ping " + i);
                s.send(PING, b);
                Frame f = s.read();
                assertThat(f.type()).isEqualTo(PONG);
                assertThat(f.body()).isEqualTo(b);
            }
        }
    }

    /** Whether any of the pids is a live process in the guest (checked by an exec in the guest). */
    private static boolean processAlive(List<Integer> pids) throws Exception {
        StringBuilder script = new StringBuilder("for p in");
        pids.forEach(p -> script.append(' ').append(p));
        script.append("; do [ -e /proc/$p ] && grep -q '^State:.[^Z]' /proc/$p/status && exit 0; done; exit 1");
        try (Session s = Session.open(vm)) {
            s.hello();
            s.send(EXEC, exec(0, "", List.of("sh", "-c", script.toString()), List.of()));
            assertThat(s.read().type()).isEqualTo(STARTED);
            Outcome o = s.untilExit();
            assertThat(o.exit()[0]).as(o.toString()).isZero();
            return o.exit()[1] == 0;
        }
    }

    /** The pids of the guest's sleep processes. */
    private static List<Integer> sleeperPids() throws Exception {
        try (Session s = Session.open(vm)) {
            s.hello();
            s.send(EXEC, exec(0, "", List.of("sh", "-c",
                    "for d in /proc/[0-9]*; do read -r n < $d/comm 2>/dev/null && [ \"$n\" = sleep ] && echo ${d#/proc/}; done; true"), List.of()));
            assertThat(s.read().type()).isEqualTo(STARTED);
            Outcome o = s.untilExit();
            return o.stdout().lines().map(Integer::parseInt).toList();
        }
    }

    // ---- the root disk ----

    @Test
    @Order(10)
    void anExt4RootDiskGetsTheAgent() throws Exception {
        Require.that(Require.onPath("mkfs.ext4"), "mkfs.ext4 is not installed (e2fsprogs)");
        Path busybox = Path.of("/bin/busybox");
        Require.that(Files.isExecutable(busybox), "no /bin/busybox (busybox-static) for the root disk");
        String hostname = "root-" + HexFormat.of().formatHex(new SecureRandom().generateSeed(6));
        Path root = Files.createDirectory(tmp.resolve("root"));
        Files.createDirectories(root.resolve("bin"));
        Files.copy(busybox, root.resolve("bin/busybox"));
        for (String applet : List.of("sh", "cat")) {
            Files.createSymbolicLink(root.resolve("bin").resolve(applet), Path.of("busybox"));
        }
        Files.createDirectories(root.resolve("etc"));
        Files.writeString(root.resolve("etc/hostname"), hostname + "\n");
        for (String d : List.of("run", "dev", "proc", "sys", "tmp")) {
            Files.createDirectories(root.resolve(d));
        }
        Path image = tmp.resolve("root.img");
        BoundedProcess.Result r = BoundedProcess.run(Duration.ofMinutes(1), "mkfs.ext4", "-q", "-F", "-E",
                "lazy_itable_init=0,lazy_journal_init=0", "-d", root.toString(), image.toString(), "16M");
        assertThat(r.succeeded()).as(r.describe() + ":\n" + r.output()).isTrue();

        TestKernel k = TestKernel.locate();
        try (Microvm disk = Microvm.builder().name("agent-root").memoryMib(96).kernel(k.vmlinux())
                .initrd(k.vmlinux().getParent().resolve("initramfs.cpio")).virtioBlk(image)
                .cmdline(k.cmdline() + " quiet percpu_alloc=page kindling.action=agent kindling.root=/dev/vda").vsock(3).build()) {
            long t0 = System.nanoTime();
            disk.start();
            assertThat(disk.console().awaitText("KINDLING-AGENT-READY 1", BOOT))
                    .as("agent ready; console:\n%s", disk.console().text()).isTrue();
            System.out.printf("[agent] root disk: boot to KINDLING-AGENT-READY: %.1f s%n", (System.nanoTime() - t0) / 1e9);
            try (Session s = Session.open(disk)) {
                s.hello();
                s.send(EXEC, exec(0, "", List.of("cat", "/etc/hostname", "/proc/1/cmdline"), List.of()));
                assertThat(s.read().type()).isEqualTo(STARTED);
                Outcome o = s.untilExit();
                assertThat(o.stdout()).as("the disk's file, and PID 1 is the agent's copy in the disk's /run; " + o)
                        .isEqualTo(hostname + "\n/run/kindling-agent\0");
                assertThat(o.exit()).containsExactly(0, 0);
            }
        }
    }

    // ---- the test's own codec ----

    record Frame(int type, byte[] body) {
        ByteBuffer le() {
            return ByteBuffer.wrap(body).order(ByteOrder.LITTLE_ENDIAN);
        }

        @Override
        public String toString() {
            String text = type == ERROR && body.length >= 8 ? " errno " + le().getInt() + " " + string(le().position(4)) : "";
            return "Frame[type " + type + ", " + body.length + " bytes" + text + "]";
        }
    }

    record Outcome(String stdout, String stderr, int[] exit) {
        @Override
        public String toString() {
            return "Outcome[stdout=" + stdout + ", stderr=" + stderr + ", exit=" + Arrays.toString(exit) + "]";
        }
    }

    /** A frame body: little-endian u32s and strings. */
    static final class Body {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Body u32(int v) {
            out.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array());
            return this;
        }

        Body str(String s) {
            byte[] b = AgentProtocolLinuxTest.bytes(s);
            return u32(b.length).raw(b);
        }

        Body raw(byte[] b) {
            out.writeBytes(b);
            return this;
        }

        byte[] bytes() {
            return out.toByteArray();
        }
    }

    static byte[] exec(int flags, String cwd, List<String> argv, List<String> env) {
        Body b = new Body().u32(flags).str(cwd).u32(argv.size());
        argv.forEach(b::str);
        b.u32(env.size());
        env.forEach(b::str);
        return b.bytes();
    }

    static byte[] header(int length, int type, int reserved) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putInt(length).putShort((short) type)
                .putShort((short) reserved).array();
    }

    static byte[] frame(int type, byte[] body, int reserved) {
        return concat(header(body.length, type, reserved), body);
    }

    static byte[] concat(byte[] a, byte[] b) {
        byte[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String string(ByteBuffer b) {
        byte[] s = new byte[b.getInt()];
        b.get(s);
        return new String(s, StandardCharsets.UTF_8);
    }

    /** One connection to the agent, closed by the watchdog if a step takes longer than {@link #STEP}. */
    static final class Session implements AutoCloseable {
        private final VsockConnection c;
        private final DataInputStream in;
        private final OutputStream out;
        private final ScheduledFuture<?> limit;

        private Session(VsockConnection c) {
            this.c = c;
            this.in = new DataInputStream(c.inputStream());
            this.out = c.outputStream();
            this.limit = watchdog.schedule(c::close, STEP.toMillis(), TimeUnit.MILLISECONDS);
        }

        static Session open(Microvm on) throws IOException {
            return new Session(on.vsock().connect(PORT, STEP));
        }

        void sendRaw(byte[] b) throws IOException {
            out.write(b);
            out.flush();
        }

        void send(int type, byte[] body) throws IOException {
            sendRaw(frame(type, body, 0));
        }

        /** The next frame; EOFException at end of stream. */
        Frame read() throws IOException {
            byte[] h = new byte[8];
            in.readFully(h);
            ByteBuffer b = ByteBuffer.wrap(h).order(ByteOrder.LITTLE_ENDIAN);
            int length = b.getInt();
            int type = b.getShort() & 0xFFFF;
            assertThat(b.getShort()).as("reserved").isZero();
            assertThat(length).as("frame length").isBetween(0, MAX_BODY);
            byte[] body = new byte[length];
            in.readFully(body);
            return new Frame(type, body);
        }

        void hello() throws IOException {
            send(HELLO, new Body().u32(1).bytes());
            Frame f = read();
            assertThat(f.type()).as(f.toString()).isEqualTo(HELLO);
            ByteBuffer b = f.le();
            assertThat(b.getInt()).isEqualTo(1);
            assertThat(string(b)).isEqualTo("kindling-agent 1");
            assertThat(b.hasRemaining()).isFalse();
        }

        /** STDOUT and STDERR until EXIT, which must be the last frame. */
        Outcome untilExit() throws IOException {
            ByteArrayOutputStream o = new ByteArrayOutputStream(), e = new ByteArrayOutputStream();
            while (true) {
                Frame f = read();
                switch (f.type()) {
                    case STDOUT -> o.writeBytes(nonEmpty(f));
                    case STDERR -> e.writeBytes(nonEmpty(f));
                    case EXIT -> {
                        ByteBuffer b = f.le();
                        int[] exit = {b.getInt(), b.getInt()};
                        assertThat(b.hasRemaining()).isFalse();
                        assertClosed();
                        return new Outcome(o.toString(StandardCharsets.UTF_8), e.toString(StandardCharsets.UTF_8), exit);
                    }
                    default -> throw new AssertionError("during EXEC: " + f);
                }
            }
        }

        private static byte[] nonEmpty(Frame f) {
            assertThat(f.body()).as("output frames are never empty").isNotEmpty();
            return f.body();
        }

        void assertError(int errno) throws IOException {
            Frame f = read();
            assertThat(f.type()).as(f.toString()).isEqualTo(ERROR);
            assertThat(f.le().getInt()).as(f.toString()).isEqualTo(errno);
            assertClosed();
        }

        /** The agent closed the connection after its last frame. */
        void assertClosed() throws IOException {
            InputStream s = in;
            try {
                int b = s.read();
                assertThat(b).as("end of stream after the session's last frame").isEqualTo(-1);
            } catch (EOFException e) {
                // closed
            }
        }

        @Override
        public void close() {
            limit.cancel(false);
            c.close();
        }
    }
}
