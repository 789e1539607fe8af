package dev.kindling.sandbox;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The client's sessions ({@link Agent}) against {@link FakeAgent} on a Unix socket: no VM. */
@Timeout(120)
class AgentSessionTest {
    @TempDir
    Path tmp;

    private FakeAgent fake;
    private Agent agent;

    @BeforeEach
    void up() throws Exception {
        fake = new FakeAgent(tmp);
        agent = new Agent("t", fake.connector(), Map.of("FROM_BUILDER", "b", "BOTH", "builder"), () -> "the console's tail");
        agent.start(Duration.ofMinutes(1));
        Session hb = agent.open();
        agent.ping(hb);
        agent.watch(hb, Duration.ofSeconds(1));
    }

    @AfterEach
    void down() throws Exception {
        agent.fail("sandbox closed");
        agent.join();
        fake.close();
    }

    @Test
    void theHeartbeatPingsFiveTimesPerWindowAndAtMostOnceASecond() {
        assertThat(Agent.pingEvery(Duration.ofSeconds(30))).isEqualTo(Duration.ofSeconds(6));
        assertThat(Agent.pingEvery(Duration.ofSeconds(5))).isEqualTo(Duration.ofSeconds(1));
        assertThat(Agent.pingEvery(Duration.ofMillis(1500))).isEqualTo(Duration.ofSeconds(1));
    }

    @Test
    void exitCodesAndSeparateStreams() {
        ExecResult ok = agent.exec(Exec.of("echo", "hello", "world"));
        assertThat(ok).isEqualTo(new ExecResult(0, "hello world\n", "", false));
        ExecResult failed = agent.exec(Exec.of("fail", "3"));
        assertThat(failed).isEqualTo(new ExecResult(3, "", "failing\n", false));
        assertThat(failed.succeeded()).isFalse();
    }

    @Test
    void largeOutputIsCollectedWhole() {
        ExecResult r = agent.exec(Exec.of("zeros", Long.toString(32L << 20)));
        assertThat(r.stdout()).hasSize(32 << 20);
        assertThat(r.stderr()).isEqualTo("done\n");
    }

    @Test
    void stdinIsStreamedWhileOutputIsReadSoLargeEchoesDoNotDeadlock() {
        byte[] data = new byte[8 << 20];
        new Random(1).nextBytes(data);
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) ('a' + (data[i] & 15)); // ASCII, so the UTF-8 string is byte for byte
        }
        ExecResult r = agent.exec(Exec.of("cat").withStdin(data));
        assertThat(r.exitCode()).isZero();
        assertThat(r.stdout().getBytes(UTF_8)).isEqualTo(data);
        assertThat(agent.exec(Exec.of("cat").withStdin(new byte[0])).stdout()).isEmpty();
        assertThat(agent.exec(Exec.of("cat")).stdout()).as("no stdin: /dev/null").isEmpty();
    }

    @Test
    void environmentMergesAndWorkingDirectoryIsSent() {
        ExecResult r = agent.exec(Exec.of("env").withEnv(Map.of("BOTH", "exec", "OWN", "o")));
        assertThat(r.stdout().lines()).containsExactlyInAnyOrder("FROM_BUILDER=b", "BOTH=exec", "OWN=o");
        assertThat(agent.exec(Exec.of("pwd").withWorkingDirectory("/tmp")).stdout()).isEqualTo("/tmp\n");
        assertThatThrownBy(() -> agent.exec(Exec.of("env").withEnv(Map.of("A=B", "x"))))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void aTimeoutSendsSigkillAndWaitsForTheExit() {
        long t0 = System.nanoTime();
        ExecResult r = agent.exec(Exec.of("sleep").withTimeout(Duration.ofMillis(300)));
        assertThat(r.timedOut()).isTrue();
        assertThat(r.exitCode()).isEqualTo(128 + 9);
        assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(30));
    }

    @Test
    void aProgramThatCannotStartNamesTheErrno() {
        assertThatThrownBy(() -> agent.exec(Exec.of("nosuch")))
                .isInstanceOf(SandboxException.class).hasMessageContaining("cannot run nosuch").hasMessageContaining("errno 2");
        assertThat(agent.exec(Exec.of("echo", "still")).stdout()).isEqualTo("still\n");
    }

    @Test
    void putAndGetSixteenMibInChunks() {
        byte[] data = new byte[16 << 20];
        new Random(2).nextBytes(data);
        agent.put("/data/x.bin", new java.io.ByteArrayInputStream(data), 0600);
        assertThat(agent.get("/data/x.bin")).isEqualTo(data);
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        assertThat(agent.get("/data/x.bin", sink, Long.MAX_VALUE)).isEqualTo(0600);
        assertThat(sink.toByteArray()).isEqualTo(data);
    }

    @Test
    void refusedFilesAreGuestFileExceptionsWithPathAndErrno() {
        assertThatThrownBy(() -> agent.get("/missing")).isInstanceOfSatisfying(GuestFileException.class, e -> {
            assertThat(e.path()).isEqualTo("/missing");
            assertThat(e.errno()).isEqualTo(2);
        });
        assertThatThrownBy(() -> agent.put("relative", new java.io.ByteArrayInputStream(new byte[1]), 0644))
                .isInstanceOfSatisfying(GuestFileException.class, e -> assertThat(e.errno()).isEqualTo(22));
        assertThatThrownBy(() -> agent.put("/x", new java.io.ByteArrayInputStream(new byte[1]), 010000))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void startStreamsStdinAndStdout() throws Exception {
        try (ExecHandle h = agent.start(Exec.of("cat").withStreamedStdin())) {
            assertThat(h.pid()).isEqualTo(4242);
            h.stdin().write("ping\n".getBytes(UTF_8));
            h.stdin().flush();
            byte[] got = h.stdout().readNBytes(5);
            assertThat(new String(got, UTF_8)).isEqualTo("ping\n");
            assertThat(h.waitFor(Duration.ofMillis(100))).isEmpty();
            h.stdin().close();
            assertThat(h.waitFor(Duration.ofSeconds(30))).hasValue(0);
            assertThat(h.stdout().read()).isEqualTo(-1);
        }
        try (ExecHandle h = agent.start(Exec.of("sleep"))) {
            h.kill();
            assertThat(h.waitFor(Duration.ofSeconds(30))).hasValue(137);
        }
        try (ExecHandle h = agent.start(Exec.of("sleep").withTimeout(Duration.ofMillis(300)))) {
            assertThat(h.waitFor(Duration.ofSeconds(30))).as("killed by the watchdog at its timeout").hasValue(137);
        }
    }

    @Test
    void closingAHandleWhoseOutputIsUnreadReturnsAtOnce() throws Exception {
        ExecHandle h = agent.start(Exec.of("zeros", Long.toString(8L << 20)));
        assertThat(h.stdout().read()).isZero();
        Thread.sleep(500); // the pump fills the 1 MiB pipe and waits
        long t0 = System.nanoTime();
        h.close();
        assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(5));
        assertThat(agent.exec(Exec.of("echo", "next")).stdout()).isEqualTo("next\n");
    }

    @Test
    void aHungAgentFailsPendingAndLaterCalls() throws Exception {
        CompletableFuture<ExecResult> pending = CompletableFuture.supplyAsync(() -> agent.exec(Exec.of("sleep")));
        assertThat(fake.sleeping.await(30, TimeUnit.SECONDS)).isTrue();
        long t0 = System.nanoTime();
        fake.hang();
        assertThat(agent.awaitFailure(Duration.ofSeconds(30))).isTrue();
        assertThat(agent.failure()).isEqualTo("guest stopped answering for 1 s");
        assertThatThrownBy(() -> pending.get(10, TimeUnit.SECONDS)).cause().isInstanceOf(SandboxException.class)
                .hasMessageContaining("guest stopped answering for 1 s").hasMessageContaining("the console's tail");
        assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(20));
        assertThatThrownBy(() -> agent.exec(Exec.of("echo"))).isInstanceOfSatisfying(SandboxException.class,
                e -> assertThat(e.consoleTail()).isEqualTo("the console's tail"));
    }

    @Test
    void failingWakesAStreamReaderAndClosesEverything() throws Exception {
        ExecHandle h = agent.start(Exec.of("sleep"));
        InputStream out = h.stdout();
        CompletableFuture<Integer> reader = CompletableFuture.supplyAsync(() -> {
            try {
                return out.read();
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        assertThat(fake.sleeping.await(30, TimeUnit.SECONDS)).isTrue();
        agent.fail("sandbox closed");
        assertThatThrownBy(() -> reader.get(10, TimeUnit.SECONDS)).hasMessageContaining("sandbox closed");
        assertThatThrownBy(() -> h.waitFor(Duration.ofSeconds(10))).isInstanceOf(SandboxException.class)
                .hasMessageContaining("sandbox closed");
        h.close();
        agent.join();
        assertThat(Thread.getAllStackTraces().keySet()).noneMatch(t -> t.getName().startsWith("sandbox-t-"));
    }
}
