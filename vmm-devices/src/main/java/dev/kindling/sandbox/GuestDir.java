package dev.kindling.sandbox;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.Comparator;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * The guest that scripts/build-guest-kernel.sh builds (vmlinux, initramfs.cpio with the agent, the
 * base command line): KINDLING_GUEST_DIR, else the system property {@code kindling.guest.dir}, else
 * the newest {@code ${KINDLING_CACHE:-~/.cache/kindling}/guest-*} that has them and the {@code agent}
 * marker.
 */
record GuestDir(Path dir) {
    static final String BUILD_HINT = "build it with scripts/build-guest-kernel.sh (or ./kindling demo)";

    Path vmlinux() {
        return dir.resolve("vmlinux");
    }

    Path initramfs() {
        return dir.resolve("initramfs.cpio");
    }

    String cmdline() {
        try {
            return Files.readString(dir.resolve("cmdline")).strip();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the guest's command line in " + dir + ": " + e.getMessage(), e);
        }
    }

    private static boolean complete(Path d) {
        return Files.isRegularFile(d.resolve("vmlinux")) && Files.isRegularFile(d.resolve("initramfs.cpio"))
                && Files.isRegularFile(d.resolve("cmdline")) && Files.exists(d.resolve("agent"));
    }

    /** The guest dir, or an {@link IllegalStateException} saying where it was looked for and how to build it. */
    static GuestDir locate() {
        return locate(System.getenv("KINDLING_GUEST_DIR"), System.getProperty("kindling.guest.dir"),
                System.getenv("KINDLING_CACHE"), System.getProperty("user.home"));
    }

    static GuestDir locate(String envDir, String propertyDir, String cacheVar, String home) {
        String named = envDir;
        String source = "KINDLING_GUEST_DIR";
        if (named == null || named.isEmpty()) {
            named = propertyDir;
            source = "system property kindling.guest.dir";
        }
        if (named != null && !named.isEmpty()) {
            Path d = Path.of(named);
            if (!complete(d)) {
                throw new IllegalStateException(source + " names " + d + ", which is not a guest with the agent (vmlinux, "
                        + "initramfs.cpio, cmdline and the agent marker): " + BUILD_HINT);
            }
            return new GuestDir(d);
        }
        Path cache = cacheVar != null && !cacheVar.isEmpty() ? Path.of(cacheVar) : Path.of(home, ".cache", "kindling");
        return newest(cache).map(GuestDir::new).orElseThrow(() -> new IllegalStateException(
                "no guest kernel with the agent in " + cache + " (nor KINDLING_GUEST_DIR): " + BUILD_HINT));
    }

    private static Optional<Path> newest(Path cache) {
        if (!Files.isDirectory(cache)) {
            return Optional.empty();
        }
        try (Stream<Path> s = Files.list(cache)) {
            return s.filter(p -> p.getFileName().toString().startsWith("guest-") && complete(p))
                    .max(Comparator.comparing(GuestDir::modified));
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    private static FileTime modified(Path p) {
        try {
            return Files.getLastModifiedTime(p.resolve("initramfs.cpio"));
        } catch (IOException e) {
            return FileTime.fromMillis(0);
        }
    }
}
