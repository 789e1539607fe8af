package dev.kindling.examples;

import dev.kindling.sandbox.ExecResult;
import dev.kindling.sandbox.Sandbox;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Runs Python in a sandbox that boots from a Debian root image, such as
 * {@code ./kindling image debian --out debian.img --packages python3} builds: the default initramfs
 * mounts the image and hands over to the agent in it. {@code ./kindling example python-sandbox} runs it.
 *
 * <p>Usage: {@code PythonSandbox IMAGE}.
 */
public final class PythonSandbox {
    private PythonSandbox() {}

    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: PythonSandbox IMAGE   (./kindling image debian --out IMAGE --packages python3)");
            System.exit(64);
        }
        ExecResult r = run(Path.of(args[0]), System.out);
        System.exit(r.exitCode());
    }

    /** Prints and returns the result of {@code python3 -c 'print(6*7)'} in a sandbox on {@code image}. */
    public static ExecResult run(Path image, PrintStream out) {
        try (Sandbox sandbox = Sandbox.builder().rootDisk(image).memoryMib(256).bootTimeout(Duration.ofMinutes(10)).build()) {
            ExecResult r = sandbox.exec("python3", "-c", "print(6*7)");
            out.print(r.stdout());
            if (!r.stderr().isEmpty()) {
                out.print("stderr: " + r.stderr());
            }
            return r;
        }
    }
}
