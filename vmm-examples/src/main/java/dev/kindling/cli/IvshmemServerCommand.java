package dev.kindling.cli;

import dev.kindling.devices.ivshmem.IvshmemServer;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;

/**
 * {@code kindling ivshmem-server --socket PATH --size SIZE [--vectors N]}: an ivshmem server alone
 * (QEMU's docs/specs/ivshmem-spec.txt, the role of QEMU's contrib/ivshmem-server), for Kindling
 * VMs ({@code --ivshmem server=PATH}), QEMU VMs ({@code -chardev socket,path=PATH}) and host
 * programs. Runs until interrupted; then it closes the server and removes the socket.
 */
final class IvshmemServerCommand {
    static final int DEFAULT_VECTORS = 1;

    record Options(Path socket, long size, int vectors) {}

    private IvshmemServerCommand() {}

    static Options parse(List<String> argv) {
        Args a = new Args(argv, Set.of("socket", "size", "vectors"), Set.of());
        if (!a.positional().isEmpty()) {
            throw new UsageException("ivshmem-server takes no argument '" + a.positional().getFirst() + "'");
        }
        String socket = a.get("socket");
        if (socket == null || socket.isEmpty()) {
            throw new UsageException("ivshmem-server needs --socket PATH");
        }
        if (!a.has("size")) {
            throw new UsageException("ivshmem-server needs --size SIZE (a power of two, e.g. 4M)");
        }
        long size = Sizes.parse("--size", a.get("size"));
        int vectors = a.intValue("vectors", DEFAULT_VECTORS);
        return new Options(Path.of(socket), size, vectors);
    }

    static int run(List<String> argv, PrintStream out) throws InterruptedException {
        Options o = parse(argv);
        CountDownLatch stop = new CountDownLatch(1);
        Thread hook = new Thread(stop::countDown, "kindling-ivshmem-server-stop");
        Runtime.getRuntime().addShutdownHook(hook);
        serve(o, out, stop);
        return 0;
    }

    /** Serves until {@code stop} opens. A bad size or vector count is a usage error. */
    static void serve(Options o, PrintStream out, CountDownLatch stop) throws InterruptedException {
        IvshmemServer server;
        try {
            server = IvshmemServer.start(o.socket(), o.size(), o.vectors());
        } catch (IllegalArgumentException e) {
            throw new UsageException("ivshmem-server: " + e.getMessage());
        }
        try (server) {
            out.printf("ivshmem-server: listening on %s size=%d vectors=%d%n", o.socket(), o.size(), o.vectors());
            out.flush();
            stop.await();
        } finally {
            try {
                Files.deleteIfExists(o.socket());
            } catch (java.io.IOException e) {
                out.println("ivshmem-server: could not remove " + o.socket() + ": " + e.getMessage());
            }
        }
    }
}
