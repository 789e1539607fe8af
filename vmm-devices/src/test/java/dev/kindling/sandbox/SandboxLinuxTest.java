package dev.kindling.sandbox;

import static dev.kindling.sandbox.TestSandboxes.progress;
import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The sandbox API against the real agent in a real Linux guest: one boot for the class. */
@Timeout(1800)
class SandboxLinuxTest {
    private static final int LARGE = 8 << 20;
    private static Sandbox sandbox;

    @TempDir
    Path tmp;

    @BeforeAll
    static void boot() {
        long t0 = System.nanoTime();
        sandbox = TestSandboxes.builder("linux-test").memoryMib(128).env("FROM_BUILDER", "b").env("BOTH", "builder").build();
        progress(String.format("booted to the agent in %.0f s", (System.nanoTime() - t0) / 1e9));
    }

    @AfterAll
    static void close() {
        if (sandbox != null) {
            sandbox.close();
        }
    }

    private static String sha256(byte[] data) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    }

    @Test
    void exitCodesAndStdoutAndStderrKeptApart() {
        assertThat(sandbox.exec("true")).isEqualTo(new ExecResult(0, "", "", false));
        ExecResult r = sandbox.exec("sh", "-c", "echo out; echo err >&2; echo more; exit 3");
        assertThat(r).isEqualTo(new ExecResult(3, "out\nmore\n", "err\n", false));
        assertThat(sandbox.exec("sh", "-c", "kill -TERM $$").exitCode()).as("killed by SIGTERM").isEqualTo(128 + 15);
    }

    @Test
    void aMissingProgramIsAnErrorNamingItsErrno() {
        assertThatThrownBy(() -> sandbox.exec("no-such-program")).isInstanceOf(SandboxException.class)
                .hasMessageContaining("no-such-program").hasMessageContaining("errno 2");
    }

    @Test
    void largeOutputArrivesWhole() {
        long t0 = System.nanoTime();
        ExecResult r = sandbox.exec("head", "-c", Integer.toString(LARGE), "/dev/zero");
        progress(String.format("%d MiB of stdout in %.1f s", LARGE >> 20, (System.nanoTime() - t0) / 1e9));
        assertThat(r.exitCode()).isZero();
        assertThat(r.stdout().length()).isEqualTo(LARGE);
        assertThat(r.stdout().chars().allMatch(c -> c == 0)).isTrue();
        assertThat(r.stderr()).isEmpty();
    }

    @Test
    void stdinIsFedThenClosed() throws Exception {
        byte[] data = new byte[1 << 20];
        new SecureRandom().nextBytes(data);
        ExecResult r = sandbox.exec(Exec.of("sha256sum").withStdin(data));
        assertThat(r.exitCode()).isZero();
        assertThat(r.stdout()).startsWith(sha256(data));
        assertThat(sandbox.exec(Exec.of("wc", "-c").withStdin("12345".getBytes(UTF_8))).stdout().strip()).isEqualTo("5");
        assertThat(sandbox.exec("wc", "-c").stdout().strip()).as("no stdin: /dev/null").isEqualTo("0");
    }

    @Test
    void environmentAndWorkingDirectoryComeFromTheExec() {
        sandbox.put("/work/cwd/marker", new byte[0]);
        ExecResult r = sandbox.exec(Exec.of("sh", "-c", "echo $FROM_BUILDER $BOTH $OWN; pwd; ls")
                .withEnv(Map.of("BOTH", "exec", "OWN", "o")).withWorkingDirectory("/work/cwd"));
        assertThat(r.stdout()).isEqualTo("b exec o\n/work/cwd\nmarker\n");
        assertThatThrownBy(() -> sandbox.exec(Exec.of("pwd").withWorkingDirectory("/no/such/dir")))
                .isInstanceOf(SandboxException.class).hasMessageContaining("errno 2");
    }

    @Test
    void putAndGetSixteenMibWithMatchingChecksums() throws Exception {
        byte[] data = new byte[16 << 20];
        new SecureRandom().nextBytes(data);
        String sum = sha256(data);
        long t0 = System.nanoTime();
        sandbox.put("/data/sub/blob.bin", data, 0640);
        progress(String.format("put 16 MiB in %.1f s", (System.nanoTime() - t0) / 1e9));
        assertThat(sandbox.exec("sha256sum", "/data/sub/blob.bin").stdout()).startsWith(sum);
        assertThat(sandbox.exec("stat", "-c", "%a %s", "/data/sub/blob.bin").stdout().strip()).isEqualTo("640 " + data.length);
        t0 = System.nanoTime();
        byte[] back = sandbox.get("/data/sub/blob.bin");
        progress(String.format("get 16 MiB in %.1f s", (System.nanoTime() - t0) / 1e9));
        assertThat(sha256(back)).isEqualTo(sum);

        Path host = tmp.resolve("host.bin");
        Files.write(host, data);
        Files.setPosixFilePermissions(host, PosixFilePermissions.fromString("rwxr-x---"));
        sandbox.put("/data/from-file.bin", host);
        assertThat(sandbox.exec("stat", "-c", "%a", "/data/from-file.bin").stdout().strip()).isEqualTo("750");
        Path copy = tmp.resolve("copy.bin");
        sandbox.get("/data/from-file.bin", copy);
        assertThat(sha256(Files.readAllBytes(copy))).isEqualTo(sum);
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(copy))).isEqualTo("rwxr-x---");
        sandbox.exec("rm", "-f", "/data/sub/blob.bin", "/data/from-file.bin");
    }

    @Test
    void missingPathsAndDirectoriesAreGuestFileExceptions() {
        assertThatThrownBy(() -> sandbox.get("/no/such/file")).isInstanceOfSatisfying(GuestFileException.class, e -> {
            assertThat(e.path()).isEqualTo("/no/such/file");
            assertThat(e.errno()).isEqualTo(2);
        });
        assertThatThrownBy(() -> sandbox.get("/proc")).isInstanceOfSatisfying(GuestFileException.class,
                e -> assertThat(e.errno()).isEqualTo(21)); // EISDIR
        assertThatThrownBy(() -> sandbox.put("relative/path", new byte[1])).isInstanceOfSatisfying(GuestFileException.class,
                e -> assertThat(e.errno()).isEqualTo(22)); // EINVAL
        assertThat(sandbox.exec("true").exitCode()).as("the agent carries on").isZero();
    }

    @Test
    void aTimeoutKillsTheGuestProcess() {
        long t0 = System.nanoTime();
        ExecResult r = sandbox.exec(Duration.ofSeconds(2), "sleep", "1000");
        progress(String.format("timed out exec returned after %.1f s", (System.nanoTime() - t0) / 1e9));
        assertThat(r.timedOut()).isTrue();
        assertThat(r.exitCode()).isEqualTo(128 + 9);
        assertThat(sandbox.exec("pidof", "sleep").exitCode()).as("no sleep left: %s", sandbox.exec("ps").stdout()).isEqualTo(1);
    }

    @Test
    void startStreamsStdinAndStdout() throws Exception {
        try (ExecHandle h = sandbox.start("cat")) {
            assertThat(h.pid()).isPositive();
            h.stdin().write("hello\n".getBytes(UTF_8));
            h.stdin().flush();
            assertThat(new String(h.stdout().readNBytes(6), UTF_8)).isEqualTo("hello\n");
            h.stdin().write("world\n".getBytes(UTF_8));
            h.stdin().close();
            assertThat(new String(h.stdout().readAllBytes(), UTF_8)).isEqualTo("world\n");
            assertThat(h.waitFor(Duration.ofMinutes(2))).hasValue(0);
        }
        try (ExecHandle h = sandbox.start("sleep", "1000")) {
            h.kill();
            assertThat(h.waitFor(Duration.ofMinutes(2))).hasValue(128 + 9);
        }
        assertThat(sandbox.isAlive()).isTrue();
    }
}
