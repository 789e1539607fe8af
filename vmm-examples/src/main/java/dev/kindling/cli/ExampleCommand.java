package dev.kindling.cli;

import dev.kindling.examples.BootBanner;
import dev.kindling.examples.PythonSandbox;
import dev.kindling.examples.SandboxCommand;
import dev.kindling.examples.SharedMemory;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * {@code kindling example boot-banner|sandbox-command|python-sandbox [IMAGE]|shared-memory}: runs one of the
 * examples of {@code dev.kindling.examples}, after building (once) what it needs: the guest kernel,
 * and for python-sandbox without an IMAGE a Debian image with python3 ({@code kindling image debian},
 * cached by its inputs).
 */
final class ExampleCommand {
    static final List<String> NAMES = List.of("boot-banner", "sandbox-command", "python-sandbox", "shared-memory");
    private static final Duration BANNER_LIMIT = Duration.ofMinutes(5);

    private ExampleCommand() {}

    static int run(List<String> argv, InputStream in, PrintStream out, PrintStream err) throws Exception {
        if (argv.isEmpty() || !NAMES.contains(argv.getFirst())) {
            throw new UsageException(argv.isEmpty() ? "example needs a name: " + String.join(", ", NAMES)
                    : "unknown example '" + argv.getFirst() + "' (there are " + String.join(", ", NAMES) + ")");
        }
        String name = argv.getFirst();
        List<String> rest = argv.subList(1, argv.size());
        if (rest.size() > (name.equals("python-sandbox") ? 1 : 0)) {
            throw new UsageException("example " + name + (name.equals("python-sandbox") ? " takes at most an IMAGE" : " takes no arguments"));
        }
        Workspace.GuestKernel k = Workspace.kernel(err);
        switch (name) {
            case "boot-banner" -> out.println(BootBanner.banner(k.dir(), BANNER_LIMIT));
            case "sandbox-command" -> SandboxCommand.run(out);
            case "shared-memory" -> SharedMemory.run(k.dir(), out);
            default -> {
                Path image = rest.isEmpty() ? debianImage(in, err) : Path.of(rest.getFirst());
                if (image == null) {
                    return 1;
                }
                if (!Files.isRegularFile(image)) {
                    throw new UsageException("no image " + image);
                }
                return PythonSandbox.run(image, out).exitCode();
            }
        }
        return 0;
    }

    /** The cached Debian image with python3, built by {@code kindling image debian} when missing or stale; null if that failed. */
    private static Path debianImage(InputStream in, PrintStream err) {
        String cache = System.getenv("KINDLING_CACHE");
        Path image = (cache != null ? Path.of(cache) : Path.of(System.getProperty("user.home"), ".cache", "kindling"))
                .resolve("examples").resolve("debian-python3.img");
        err.println("kindling: the Debian image with python3: " + image + " (the first build takes several minutes)");
        int status = Kindling.run(List.of("image", "debian", "--out", image.toString(), "--packages", "python3"), in, err, err);
        return status == 0 ? image : null;
    }
}
