package dev.kindling.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicReference;

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
    private static final Duration GUEST_BUILD_LIMIT = Duration.ofMinutes(5);
    /** A kernel build that takes longer than this is given up; the first one takes several minutes. */
    private static final Duration KERNEL_BUILD_LIMIT = Duration.ofMinutes(60);
    /** The exit status and the stderr line with which the build scripts say the host cannot provide what they need. */
    static final int UNAVAILABLE_STATUS = 69;
    private static final String KERNEL_UNAVAILABLE = "[guest] unavailable: ";

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
        ChildProcess.Result r;
        try {
            r = ChildProcess.run(GUEST_BUILD_LIMIT, List.of(make.toString(), "-s", "-C", guests.toString()));
        } catch (ChildProcess.Failure e) {
            throw new PrerequisiteException("cannot build the test guests (make -C guests): " + e.getMessage());
        }
        if (r.exitStatus() != 0) {
            throw new PrerequisiteException("cannot build the test guests (make -C guests): " + firstError(r.lines()));
        }
    }

    /** The line of make's output that says what went wrong: the first error, else the last line. */
    static String firstError(List<String> lines) {
        List<String> text = lines.stream().map(String::strip).filter(l -> !l.isEmpty()).toList();
        return text.stream().filter(l -> l.toLowerCase(Locale.ROOT).contains("error") || l.contains("***"))
                .findFirst().orElse(text.isEmpty() ? "no output" : text.getLast());
    }

    /**
     * Builds {@code guests/out/<name>}, a target of guests/Makefile that {@code all} leaves out (it
     * needs more of the host than the test guests do, such as a static libc), and returns its path.
     */
    static Path buildGuestTarget(String name, PrintStream progress) throws IOException, InterruptedException {
        HostTool.GCC.require(progress);
        Path make = HostTool.MAKE.require(progress);
        Path guests = root().resolve("guests");
        String what = "cannot build guests/out/" + name + " (make -C guests out/" + name + "): ";
        ChildProcess.Result r;
        try {
            r = ChildProcess.run(GUEST_BUILD_LIMIT, List.of(make.toString(), "-s", "-C", guests.toString(), "out/" + name));
        } catch (ChildProcess.Failure e) {
            throw new PrerequisiteException(what + e.getMessage());
        }
        if (r.exitStatus() != 0) {
            throw new PrerequisiteException(what + firstError(r.lines()));
        }
        return guest(name);
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
            dir = buildKernel(new ProcessBuilder(root().resolve("scripts/build-guest-kernel.sh").toString()), progress);
        }
        Path d = Path.of(dir);
        Path initramfs = Files.exists(d.resolve("initramfs.cpio")) ? d.resolve("initramfs.cpio") : d.resolve("initramfs.cpio.gz");
        return new GuestKernel(d, d.resolve("vmlinux"), d.resolve("bzImage"), initramfs,
                Files.readString(d.resolve("cmdline")).trim());
    }

    /**
     * Runs the kernel build script ({@code script}: its command and environment) and returns the
     * output directory, its last line of standard output; its progress (standard error) goes to
     * {@code progress}. A host that cannot provide the script's packages is a {@link PrerequisiteException}
     * with the script's reason.
     */
    static String buildKernel(ProcessBuilder script, PrintStream progress) throws IOException, InterruptedException {
        return runBuildScript(script, KERNEL_BUILD_LIMIT, KERNEL_UNAVAILABLE, "no guest kernel: ", progress);
    }

    /**
     * Runs one of the project's build scripts and returns its last line of standard output (what it
     * built). Its standard error is progress, except a line starting with {@code unavailablePrefix}:
     * with exit status 69 that line's reason becomes a {@link PrerequisiteException} starting with
     * {@code what}, said once.
     */
    static String runBuildScript(ProcessBuilder script, Duration limit, String unavailablePrefix, String what,
            PrintStream progress) throws IOException, InterruptedException {
        AtomicReference<String> unavailable = new AtomicReference<>();
        ChildProcess.Result r = ChildProcess.run(limit, script, line -> {
            if (line.startsWith(unavailablePrefix)) {
                unavailable.set(line.substring(unavailablePrefix.length()).strip()); // said once, by the exception
            } else {
                progress.println(line);
            }
        });
        String name = Path.of(script.command().getFirst()).getFileName().toString();
        if (r.exitStatus() == UNAVAILABLE_STATUS) {
            throw new PrerequisiteException(what + (unavailable.get() != null ? unavailable.get()
                    : name + " exited " + UNAVAILABLE_STATUS + " without a reason"));
        }
        List<String> lines = r.lines().stream().filter(l -> !l.isBlank()).toList();
        if (r.exitStatus() != 0 || lines.isEmpty()) {
            throw new ChildProcess.Failure(name + " failed (exit status " + r.exitStatus() + "): see its output above");
        }
        return lines.getLast().strip();
    }
}
