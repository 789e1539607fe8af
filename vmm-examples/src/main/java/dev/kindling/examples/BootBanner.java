package dev.kindling.examples;

import dev.kindling.microvm.Microvm;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.regex.MatchResult;
import java.util.regex.Pattern;

/**
 * Boots the Linux guest that {@code scripts/build-guest-kernel.sh} builds and prints the kernel's
 * banner, its "Linux version ..." console line; then closes the VM without waiting for the rest of
 * the boot. {@code ./kindling example boot-banner} runs it.
 *
 * <p>Usage: {@code BootBanner GUEST_DIR}, the script's output directory
 * ({@code GUEST_DIR=$(scripts/build-guest-kernel.sh | tail -1)}).
 */
public final class BootBanner {
    private static final Pattern BANNER = Pattern.compile("Linux version .*");

    private BootBanner() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: BootBanner GUEST_DIR   (GUEST_DIR=$(scripts/build-guest-kernel.sh | tail -1))");
            System.exit(64);
        }
        System.out.println(banner(Path.of(args[0]), Duration.ofMinutes(5)));
    }

    /** The banner line of a boot of the guest in {@code guestDir}, which must show within {@code timeout}. */
    public static String banner(Path guestDir, Duration timeout) throws IOException, InterruptedException {
        String cmdline = Files.readString(guestDir.resolve("cmdline")).strip();  // console=ttyS0 and friends
        try (Microvm vm = Microvm.builder().memoryMib(64).vcpus(1)
                .kernel(guestDir.resolve("vmlinux"))
                .initrd(guestDir.resolve("initramfs.cpio"))
                .cmdline(cmdline)
                .build()) {
            vm.start();
            return vm.console().awaitText(BANNER, timeout).map(MatchResult::group)
                    .orElseThrow(() -> new IllegalStateException("no kernel banner within " + timeout
                            + "; the console said:\n" + vm.console().text()));
        }
    }
}
