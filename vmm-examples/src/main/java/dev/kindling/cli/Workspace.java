package dev.kindling.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Where the command line finds its inputs: the repository (set by the launcher as KINDLING_ROOT),
 * the freestanding guests it built, and the Linux test kernel from scripts/build-guest-kernel.sh.
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

    /** A freestanding guest built by {@code make -C guests} (the launcher runs it). */
    static Path guest(String name) {
        Path p = root().resolve("guests/out").resolve(name);
        if (!Files.isRegularFile(p)) {
            throw new UsageException(p + " is missing: run 'make -C guests' (needs gcc)");
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
