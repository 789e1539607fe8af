package dev.kindling.junit;

import dev.kindling.microvm.ConfigException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.Comparator;
import java.util.Optional;
import java.util.function.Function;
import java.util.stream.Stream;

/**
 * The Linux guest built by scripts/build-guest-kernel.sh: the directory named by the environment
 * variable {@code KINDLING_GUEST_DIR}, else by the property {@code kindling.guest.dir}, else the newest
 * {@code guest-*} directory with a vmlinux in the script's cache ({@code $KINDLING_CACHE}, default
 * {@code ~/.cache/kindling}).
 */
record BuiltGuest(Path dir, Path vmlinux, Path initramfs, String cmdline) {
    static final String BUILD_COMMAND = "scripts/build-guest-kernel.sh";

    /**
     * @param env an environment lookup ({@code System::getenv} outside tests)
     * @param property a property lookup (JUnit's configuration parameters, which include system properties)
     * @throws ConfigException (field {@code kernel}) naming the command that builds the guest when there is none
     */
    static BuiltGuest locate(Function<String, String> env, Function<String, Optional<String>> property) {
        Optional<String> named = Optional.ofNullable(env.apply("KINDLING_GUEST_DIR"))
                .or(() -> property.apply("kindling.guest.dir"))
                .filter(s -> !s.isBlank());
        if (named.isPresent()) {
            return in(Path.of(named.get()).toAbsolutePath());
        }
        Path cache = Optional.ofNullable(env.apply("KINDLING_CACHE")).filter(s -> !s.isBlank()).map(Path::of)
                .orElseGet(() -> Path.of(Optional.ofNullable(env.apply("HOME")).orElse(System.getProperty("user.home")),
                        ".cache", "kindling"));
        return newestIn(cache).map(BuiltGuest::in).orElseThrow(() -> new ConfigException("kernel",
                "no Linux guest is built (looked in KINDLING_GUEST_DIR, kindling.guest.dir and " + cache
                        + "): run " + BUILD_COMMAND + " to build it, or name a kernel"));
    }

    private static Optional<Path> newestIn(Path cache) {
        if (!Files.isDirectory(cache)) {
            return Optional.empty();
        }
        try (Stream<Path> dirs = Files.list(cache)) {
            return dirs.filter(d -> d.getFileName().toString().startsWith("guest-"))
                    .filter(d -> Files.isRegularFile(d.resolve("vmlinux")) && Files.isRegularFile(d.resolve("cmdline")))
                    .max(Comparator.comparing(d -> modified(d.resolve("vmlinux"))));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list the guest cache " + cache, e);
        }
    }

    private static FileTime modified(Path p) {
        try {
            return Files.getLastModifiedTime(p);
        } catch (IOException e) {
            return FileTime.fromMillis(0); // vanished meanwhile (a rebuild): the oldest
        }
    }

    private static BuiltGuest in(Path dir) {
        Path vmlinux = dir.resolve("vmlinux");
        Path cmdline = dir.resolve("cmdline");
        if (!Files.isRegularFile(vmlinux) || !Files.isRegularFile(cmdline)) {
            throw new ConfigException("kernel", dir + " is not a guest built by " + BUILD_COMMAND
                    + " (it has no vmlinux or no cmdline): run " + BUILD_COMMAND);
        }
        Path cpio = dir.resolve("initramfs.cpio");
        Path initramfs = Files.isRegularFile(cpio) ? cpio : dir.resolve("initramfs.cpio.gz");
        try {
            return new BuiltGuest(dir, vmlinux, initramfs, Files.readString(cmdline).strip());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + cmdline, e);
        }
    }
}
