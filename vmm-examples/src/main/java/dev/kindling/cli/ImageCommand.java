package dev.kindling.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * {@code kindling image debian --out PATH [--packages p1,p2,...] [--size MIB]}: a Debian 12 ext4 root
 * image for {@code Sandbox.builder().rootDisk(PATH)}, built by scripts/build-debian-image.sh
 * (debootstrap, cached by its inputs); prints the image's path.
 */
final class ImageCommand {
    /** A first build downloads and unpacks some hundred packages: a minute or two here, more on a slow mirror. */
    private static final Duration BUILD_LIMIT = Duration.ofMinutes(30);
    private static final Pattern PACKAGE = Pattern.compile("[a-z0-9][a-z0-9+.-]+");
    private static final String UNAVAILABLE = "[image] unavailable: ";

    private ImageCommand() {}

    static int run(List<String> argv, PrintStream out, PrintStream err) throws IOException, InterruptedException {
        if (argv.isEmpty() || !argv.getFirst().equals("debian")) {
            throw new UsageException(argv.isEmpty() ? "image needs a kind of image: debian"
                    : "unknown image '" + argv.getFirst() + "' (there is: debian)");
        }
        List<String> script = debianScriptArgs(argv.subList(1, argv.size()));
        out.println(debian(Workspace.root(), script, err));
        return 0;
    }

    /** The script's arguments for the command's, checked here so that a mistake is a usage error. */
    static List<String> debianScriptArgs(List<String> argv) {
        Args a = new Args(argv, Set.of("out", "packages", "size"), Set.of());
        if (!a.positional().isEmpty()) {
            throw new UsageException("image debian takes no argument '" + a.positional().getFirst() + "'");
        }
        String outPath = a.get("out");
        if (outPath == null || outPath.isBlank()) {
            throw new UsageException("image debian needs --out PATH");
        }
        List<String> script = new ArrayList<>(List.of("--out", Path.of(outPath).toAbsolutePath().toString()));
        String packages = a.get("packages");
        if (packages != null) {
            for (String p : packages.split(",", -1)) {
                if (!PACKAGE.matcher(p).matches()) {
                    throw new UsageException("--packages: '" + p + "' is not a Debian package name");
                }
            }
            script.addAll(List.of("--packages", packages));
        }
        if (a.has("size")) {
            int size = a.intValue("size", 0);
            if (size <= 0) {
                throw new UsageException("--size takes a number of MiB above 0, got " + size);
            }
            script.addAll(List.of("--size", Integer.toString(size)));
        }
        return script;
    }

    /**
     * Runs scripts/build-debian-image.sh of the repository {@code root} with {@code scriptArgs}, its
     * progress to {@code progress}, and returns the image's path (the script's last line).
     */
    static Path debian(Path root, List<String> scriptArgs, PrintStream progress) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(root.resolve("scripts/build-debian-image.sh").toString()));
        command.addAll(scriptArgs);
        return Path.of(Workspace.runBuildScript(new ProcessBuilder(command), BUILD_LIMIT, UNAVAILABLE,
                "cannot build the Debian image: ", progress));
    }
}
