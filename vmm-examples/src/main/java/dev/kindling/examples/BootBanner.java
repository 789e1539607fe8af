package dev.kindling.examples;

import dev.kindling.microvm.Console;
import dev.kindling.microvm.Microvm;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
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
    private static final Pattern BANNER = Pattern.compile("(Linux version [^\\r\\n]*)\\r?\\n");

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
            // the console's output as it comes, until a whole banner line has
            CompletableFuture<String> banner = new CompletableFuture<>();
            StringBuilder seen = new StringBuilder();
            try (Console.Subscription s = vm.console().follow(text -> {
                Matcher m = BANNER.matcher(seen.append(text));
                if (m.find()) {
                    banner.complete(m.group(1));
                }
            })) {
                vm.onExit().thenRun(() -> banner.completeExceptionally(new IllegalStateException("the guest ended")));
                vm.start();
                return banner.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            } catch (ExecutionException | TimeoutException e) {
                throw new IllegalStateException("no kernel banner within " + timeout + " (" + e.getMessage()
                        + "); the console said:\n" + vm.console().text(), e);
            }
        }
    }
}
