package dev.kindling.examples;

import dev.kindling.sandbox.ExecResult;
import dev.kindling.sandbox.Sandbox;
import java.io.PrintStream;
import java.time.Duration;

/**
 * Runs commands in a sandbox with the default guest (the kernel and busybox initramfs of
 * {@code scripts/build-guest-kernel.sh}): {@code uname -a}, then a shell pipeline that also writes to
 * stderr and exits 3, and prints what each left. {@code ./kindling example sandbox-command} runs it.
 */
public final class SandboxCommand {
    /** The pipeline: a checksum of a line through busybox's tools, a line on stderr, exit status 3. */
    public static final String PIPELINE = "echo hello sandbox | sha256sum | head -c 16; echo; echo done >&2; exit 3";

    private SandboxCommand() {}

    public static void main(String[] args) {
        run(System.out);
    }

    public static void run(PrintStream out) {
        // build() boots and returns once the agent answers; where guest kernel code runs emulated
        // (nested virtualization) on a busy host a boot can take minutes, hence the generous timeout
        try (Sandbox sandbox = Sandbox.builder().memoryMib(128).bootTimeout(Duration.ofMinutes(10)).build()) {
            print(out, "uname -a", sandbox.exec("uname", "-a"));
            print(out, "sh -c '" + PIPELINE + "'", sandbox.exec("sh", "-c", PIPELINE));
        }
    }

    private static void print(PrintStream out, String command, ExecResult r) {
        out.println("$ " + command);
        out.print("stdout: " + r.stdout());
        if (!r.stderr().isEmpty()) {
            out.print("stderr: " + r.stderr());
        }
        out.println("exit code: " + r.exitCode());
    }
}
