package dev.kindling.devices.virtio.net;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kindling.testing.BoundedProcess;
import dev.kindling.testing.Require;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A network namespace a test creates (uniquely named) and deletes on close, with {@code ip} run
 * inside it. Skips the test when {@code ip} is missing or the kernel refuses a namespace.
 */
public final class NetNamespace implements AutoCloseable {
    private static final Duration LIMIT = Duration.ofSeconds(30);
    private final String name;

    private NetNamespace(String name) {
        this.name = name;
    }

    public static NetNamespace create() throws IOException, InterruptedException {
        Require.that(Require.onPath("ip"), "ip (iproute2) is not installed: needed for a network namespace");
        String name = uniqueName("kdns");
        BoundedProcess.Result r = BoundedProcess.run(LIMIT, "ip", "netns", "add", name);
        if (!r.succeeded()) {
            return Require.unavailable("cannot create a network namespace (needs root): " + r.describe() + ": " + r.output());
        }
        NetNamespace ns = new NetNamespace(name);
        try {
            ns.ip("link", "set", "lo", "up");
            return ns;
        } catch (IOException | InterruptedException | RuntimeException | Error e) {
            ns.close();
            throw e;
        }
    }

    /** {@code prefix} and 8 random hex digits: an interface or namespace name no other run uses (at most 15 bytes). */
    public static String uniqueName(String prefix) {
        return prefix + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextInt());
    }

    public String name() {
        return name;
    }

    /** Runs {@code ip -n <this> args...}; fails the test if it fails. */
    public String ip(String... args) throws IOException, InterruptedException {
        BoundedProcess.Result r = ipResult(args);
        assertTrue(r.succeeded(), () -> r.describe() + ": " + r.output());
        return r.output();
    }

    /** Runs {@code ip -n <this> args...} and returns how it went. */
    public BoundedProcess.Result ipResult(String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("ip", "-n", name));
        command.addAll(List.of(args));
        return BoundedProcess.run(LIMIT, null, command);
    }

    /** Moves interface {@code device} of the test's own namespace into this one. */
    public void adopt(String device) throws IOException, InterruptedException {
        BoundedProcess.Result r = BoundedProcess.run(LIMIT, "ip", "link", "set", device, "netns", name);
        assertTrue(r.succeeded(), () -> r.describe() + ": " + r.output());
    }

    @Override
    public void close() throws IOException {
        BoundedProcess.Result r;
        try {
            r = BoundedProcess.run(LIMIT, "ip", "netns", "delete", name);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while deleting namespace " + name, e);
        }
        assertTrue(r.succeeded(), () -> "namespace " + name + " left behind: " + r.describe() + ": " + r.output());
    }
}
