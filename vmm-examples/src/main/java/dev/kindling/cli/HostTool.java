package dev.kindling.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * A program a command needs from the host and the Debian package that has it. {@link #require} finds
 * it on PATH or, when running as root where apt-get exists, installs the package first (as
 * {@code scripts/test} installs gcc); otherwise it fails with one line naming the package.
 */
record HostTool(String command, String debianPackage) {
    static final HostTool QEMU = new HostTool("qemu-system-x86_64", "qemu-system-x86");
    static final HostTool MAKE = new HostTool("make", "make");
    static final HostTool GCC = new HostTool("gcc", "gcc");
    static final HostTool LD = new HostTool("ld", "binutils");

    /** An install that takes longer than this is given up. */
    private static final Duration INSTALL_LIMIT = Duration.ofMinutes(15);

    /** The program's path on this process's PATH, installing it first if it is missing. */
    Path require(PrintStream progress) throws InterruptedException {
        return require(System.getenv().getOrDefault("PATH", ""), progress);
    }

    /** The same with the given search path, which also decides where apt-get is looked for. */
    Path require(String searchPath, PrintStream progress) throws InterruptedException {
        Optional<Path> found = find(searchPath);
        if (found.isPresent()) {
            return found.get();
        }
        Optional<Path> aptGet = new HostTool("apt-get", "apt").find(searchPath);
        if (aptGet.isEmpty() || !runningAsRoot()) {
            throw new PrerequisiteException(command + " is not installed (apt-get install " + debianPackage + ")");
        }
        progress.println("kindling: " + command + " is missing: installing " + debianPackage + " (apt-get)...");
        String failure = aptGet(aptGet.get(), List.of("update", "-qq"));
        if (failure == null) {
            failure = aptGet(aptGet.get(), List.of("install", "-y", "-qq", debianPackage));
        }
        found = find(searchPath);
        if (found.isPresent()) {
            return found.get();
        }
        throw new PrerequisiteException(command + " is not installed and apt-get install " + debianPackage
                + " did not install it" + (failure == null ? "" : ": " + failure));
    }

    Optional<Path> find(String searchPath) {
        for (String dir : searchPath.split(":")) {
            if (dir.isEmpty()) {
                continue;
            }
            Path p = Path.of(dir, command);
            if (Files.isRegularFile(p) && Files.isExecutable(p)) {
                return Optional.of(p);
            }
        }
        return Optional.empty();
    }

    /** Runs apt-get with a bounded wait; null when it succeeded, else its last line of output. */
    private static String aptGet(Path aptGet, List<String> args) throws InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(aptGet.toString());
        pb.command().addAll(args);
        pb.environment().put("DEBIAN_FRONTEND", "noninteractive");
        try {
            ChildProcess.Result r = ChildProcess.run(INSTALL_LIMIT, pb, null);
            if (r.exitStatus() == 0) {
                return null;
            }
            List<String> lines = r.lines().stream().filter(l -> !l.isBlank()).toList();
            return lines.isEmpty() ? "apt-get " + args.getFirst() + " exited " + r.exitStatus() : lines.getLast().trim();
        } catch (ChildProcess.Failure e) {
            return e.getMessage();
        } catch (IOException e) {
            return "cannot run apt-get: " + e.getMessage();
        }
    }

    /** The effective user id from /proc/self/status is 0. */
    static boolean runningAsRoot() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("Uid:")) {
                    String[] ids = line.substring(4).trim().split("\\s+");
                    return ids.length > 1 && ids[1].equals("0");
                }
            }
        } catch (IOException e) {
            return false;
        }
        return false;
    }
}
