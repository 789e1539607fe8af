package dev.kindling.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * Where the command line finds its inputs: the repository (set by the launcher as KINDLING_ROOT),
 * the freestanding guests of {@code guests/} (built for the commands that run them), and the Linux
 * test kernel from scripts/build-guest-kernel.sh.
 */
final class Workspace {
    /** The test kernel's files. */
    record GuestKernel(Path dir, Path vmlinux, Path bzImage, Path initramfs, String cmdline) {}

    private Workspace() {}

    static Path root() {
        String root = System.getenv("KINDLING_ROOT");
        if (root == null) {
            throw new UsageException("KINDLING_ROOT is not set: start this through ./kindling");
        }
        return Path.of(root);
    }

    /** A make of the guests that takes longer than this is given up. */
    private static final long GUEST_BUILD_LIMIT_MINUTES = 5;

    /**
     * Builds the freestanding guests ({@code make -C guests}, which does nothing when they are up to
     * date), for the commands that run them; installs gcc, make and binutils first where it can.
     */
    static void buildGuests(PrintStream progress) throws IOException, InterruptedException {
        HostTool.GCC.require(progress);
        HostTool.LD.require(progress);
        buildGuests(root().resolve("guests"), progress);
    }

    static void buildGuests(Path guests, PrintStream progress) throws IOException, InterruptedException {
        Path make = HostTool.MAKE.require(progress);
        Path log = Files.createTempFile("kindling-guests-", ".log");
        try {
            Process p = new ProcessBuilder(make.toString(), "-s", "-C", guests.toString())
                    .redirectErrorStream(true).redirectOutput(log.toFile()).start();
            if (!p.waitFor(GUEST_BUILD_LIMIT_MINUTES, TimeUnit.MINUTES)) {
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                throw new PrerequisiteException("building the test guests (make -C guests) took longer than "
                        + GUEST_BUILD_LIMIT_MINUTES + " minutes");
            }
            if (p.exitValue() != 0) {
                throw new PrerequisiteException("cannot build the test guests (make -C guests): "
                        + firstError(new String(Files.readAllBytes(log), StandardCharsets.UTF_8).lines().toList()));
            }
        } finally {
            Files.deleteIfExists(log);
        }
    }

    /** The line of make's output that says what went wrong: the first error, else the last line. */
    static String firstError(List<String> lines) {
        List<String> text = lines.stream().map(String::strip).filter(l -> !l.isEmpty()).toList();
        return text.stream().filter(l -> l.toLowerCase(Locale.ROOT).contains("error") || l.contains("***"))
                .findFirst().orElse(text.isEmpty() ? "no output" : text.getLast());
    }

    /** A freestanding guest that {@link #buildGuests} made. */
    static Path guest(String name) {
        Path p = root().resolve("guests/out").resolve(name);
        if (!Files.isRegularFile(p)) {
            throw new PrerequisiteException(p + " is missing: the test guests were not built (make -C guests)");
        }
        return p;
    }

    /** The Linux test kernel: KINDLING_GUEST_DIR if set, else built (once, then cached) by the project script. */
    static GuestKernel kernel(PrintStream progress) throws IOException, InterruptedException {
        String dir = System.getenv("KINDLING_GUEST_DIR");
        if (dir == null) {
            progress.println("kindling: locating the guest kernel (the first build takes several minutes)...");
            Process p = new ProcessBuilder(root().resolve("scripts/build-guest-kernel.sh").toString())
                    .redirectError(ProcessBuilder.Redirect.INHERIT).start();
            List<String> lines = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).lines().toList();
            if (p.waitFor() != 0 || lines.isEmpty()) {
                throw new IOException("scripts/build-guest-kernel.sh failed (exit " + p.exitValue() + ")");
            }
            dir = lines.getLast().trim();
        }
        Path d = Path.of(dir);
        Path initramfs = Files.exists(d.resolve("initramfs.cpio")) ? d.resolve("initramfs.cpio") : d.resolve("initramfs.cpio.gz");
        return new GuestKernel(d, d.resolve("vmlinux"), d.resolve("bzImage"), initramfs,
                Files.readString(d.resolve("cmdline")).trim());
    }
}
