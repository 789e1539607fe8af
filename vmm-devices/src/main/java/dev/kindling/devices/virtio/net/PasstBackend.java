package dev.kindling.devices.virtio.net;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;

import dev.kindling.sys.Errno;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.SyscallException;
import dev.kindling.sys.UnixSocket;
import java.io.IOException;
import java.io.InputStream;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * passt, the user-mode network daemon (libkrun's and podman's): a Unix stream socket carrying each
 * Ethernet frame after its length as 4 bytes big-endian, as QEMU's {@code -netdev stream} does. It
 * gives the guest outbound TCP and UDP with no root and no host set-up. Started by Kindling (and
 * ended with the backend) unless {@link PasstOptions#socket()} names one already running.
 *
 * <p>Kindling starts {@code passt --foreground --one-off --socket DIR/passt.sock -q} in a private
 * directory, with {@code -a}, {@code -n}, {@code -g} from the options and {@code --dns none
 * --no-dhcp-dns --no-dhcp-search} when DNS is not offered. As root, passt drops to user
 * {@code nobody} before it binds its socket, so the directory is given to {@code nobody}. On a host
 * with no IPv4 default route passt finds no interface to copy addresses from and exits; there
 * Kindling adds {@code -4 -i lo -M 9a:55:9a:55:9a:55} (and QEMU's user-network addresses
 * 10.0.2.15/24 via 10.0.2.2 unless given), so the guest still reaches the host's loopback through the
 * gateway address.
 *
 * <p>The stream is never left with half a frame: a frame the socket only partly takes is finished
 * on the next send or when the socket drains (the device thread is woken for it), and frames are
 * dropped only whole: a send while the rest of an earlier frame still cannot go out drops the new
 * frame. A send never waits, so a passt that stops reading never stalls the device thread. A
 * received frame longer than the device's buffer is dropped by skipping its bytes; a length beyond
 * {@link #MAX_FRAME}, which passt never sends, means the stream is out of step: the backend ends.
 *
 * <p>A bug of passt itself (Debian 12's 0.0~git20230309, still in its code in 2025 where the kernel
 * lacks SO_PEEK_OFF for TCP): once the guest has sent FIN on a TCP connection, passt takes the
 * guest's later ACKs as acknowledged but no longer discards those bytes from the host socket, while
 * it still reads the socket at an offset of what it sent past the last ACK. So data that still comes
 * to a guest that half-closed is sent again from an earlier place in the stream, under new sequence
 * numbers and with valid checksums: the guest gets wrong bytes, not a broken connection. Seen from a
 * guest that echoed 128 KiB through passt and shut down writing while the echo still came back
 * (passt's own capture showed each wrong segment's bytes exactly as far back as the ACKs it had not
 * discarded); whether it shows depends on how many ACKs the guest sends after its FIN, so a slower
 * guest sees it more often. Guests behind this passt should not half-close while they still expect
 * data.
 */
public final class PasstBackend implements NetBackend {
    private static final System.Logger LOG = System.getLogger(PasstBackend.class.getName());
    /** The largest frame either way ({@link VirtioNet#MAX_FRAME}): passt's MTU of 65520 and an Ethernet header fit. */
    static final int MAX_FRAME = VirtioNet.MAX_FRAME;
    /** How long a started passt has to create its socket. */
    static final Duration START_WAIT = Duration.ofSeconds(5);
    /** How long passt has to exit after SIGTERM before it is killed. */
    private static final Duration STOP_WAIT = Duration.ofSeconds(2);
    private static final int LENGTH = 4;
    private static final int RX_CAPACITY = 4 * (LENGTH + MAX_FRAME);
    private static final String NO_ROUTE_MAC = "9a:55:9a:55:9a:55";
    private static final int LOG_TAIL = 4096;

    private final String what;
    private final Fd socket;
    private final Readiness readiness;
    private final Process process;
    private final Thread logDrain;
    private final StringBuilder log;
    private final Path directory;
    private final Arena arena = Arena.ofShared();

    private final Object rxLock = new Object();
    private final MemorySegment rx = arena.allocate(RX_CAPACITY);
    private int rxStart, rxEnd;
    /** Bytes of a dropped frame still to skip. */
    private long rxSkip;

    private final Object txLock = new Object();
    private final MemorySegment tx = arena.allocate(LENGTH + MAX_FRAME);
    private int txStart, txEnd;

    private volatile boolean ended;
    private boolean closed;

    private PasstBackend(String what, Fd socket, Readiness readiness, Process process, Thread logDrain,
            StringBuilder log, Path directory) {
        this.what = what;
        this.socket = socket;
        this.readiness = readiness;
        this.process = process;
        this.logDrain = logDrain;
        this.log = log;
        this.directory = directory;
    }

    public static PasstBackend open(PasstOptions options) throws IOException {
        if (options.socket().isPresent()) {
            Path path = options.socket().get();
            Fd fd;
            try {
                fd = UnixSocket.connect(path);
            } catch (SyscallException e) {
                throw new IOException("cannot connect to passt at " + path + ": " + Errno.name(e.errno()), e);
            }
            return connected("passt at " + path, fd, null, null, null, null);
        }
        return start(options);
    }

    private static PasstBackend start(PasstOptions options) throws IOException {
        Path passt = onPath("passt").orElseThrow(() -> new IOException("passt not found on PATH (Debian: apt-get install passt)"));
        boolean root = runningAsRoot();
        Path dir = Files.createTempDirectory("kindling-passt-", PosixFilePermissions.asFileAttribute(
                PosixFilePermissions.fromString("rwx------")));
        Process process = null;
        Thread drain = null;
        StringBuilder log = new StringBuilder();
        try {
            if (root) {
                // passt will not run as root: it becomes nobody before it binds its socket here
                UserPrincipal nobody = dir.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName("nobody");
                Files.setOwner(dir, nobody);
            }
            Path sock = dir.resolve("passt.sock");
            List<String> command = command(passt, sock, options, root, hasIpv4DefaultRoute());
            ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
            process = pb.start();
            drain = drain(process, log);
            Fd fd = awaitSocket(process, drain, sock, log);
            return connected("passt " + process.pid(), fd, process, drain, log, dir);
        } catch (IOException | RuntimeException | Error e) {
            stop(process, drain);
            deleteTree(dir);
            throw e;
        }
    }

    /** The passt command line for {@code options}. */
    static List<String> command(Path passt, Path socket, PasstOptions options, boolean root, boolean defaultRoute) {
        List<String> c = new ArrayList<>(List.of(passt.toString(), "--foreground", "--one-off", "--socket", socket.toString(), "-q"));
        if (root) {
            c.addAll(List.of("--runas", "nobody"));
        }
        boolean chooseInterface = !defaultRoute && options.extraArguments().stream().noneMatch(a ->
                a.equals("-i") || a.startsWith("--interface") || a.startsWith("--outbound-if4") || a.equals("-6")
                || a.equals("--ipv6-only"));
        Optional<String> address = options.address();
        Optional<String> gateway = options.gateway();
        int prefix = options.prefixLength();
        if (chooseInterface) {
            c.addAll(List.of("-4", "-i", "lo", "-M", NO_ROUTE_MAC));
            if (address.isEmpty()) {
                address = Optional.of("10.0.2.15");
                prefix = prefix == 0 ? 24 : prefix;
            }
            if (gateway.isEmpty()) {
                gateway = Optional.of("10.0.2.2");
            }
        }
        address.ifPresent(a -> c.addAll(List.of("-a", a)));
        if (prefix != 0) {
            c.addAll(List.of("-n", Integer.toString(prefix)));
        }
        gateway.ifPresent(g -> c.addAll(List.of("-g", g)));
        if (!options.offerDns()) {
            c.addAll(List.of("--dns", "none", "--no-dhcp-dns", "--no-dhcp-search"));
        }
        c.addAll(options.extraArguments());
        return c;
    }

    /** Whether {@code /proc/net/route} (its text given) has an IPv4 default route. */
    static boolean hasDefaultRoute(String procNetRoute) {
        return procNetRoute.lines().skip(1).map(l -> l.trim().split("\\s+"))
                .anyMatch(f -> f.length > 7 && f[1].equals("00000000") && f[7].equals("00000000"));
    }

    private static boolean hasIpv4DefaultRoute() {
        try {
            return hasDefaultRoute(Files.readString(Path.of("/proc/net/route")));
        } catch (IOException e) {
            return true; // let passt find out for itself
        }
    }

    private static Fd awaitSocket(Process process, Thread drain, Path sock, StringBuilder log) throws IOException {
        long deadline = System.nanoTime() + START_WAIT.toNanos();
        SyscallException last = null;
        while (System.nanoTime() < deadline) {
            if (Files.exists(sock)) {
                try {
                    return UnixSocket.connect(sock);
                } catch (SyscallException e) {
                    last = e; // bound, not listening yet
                }
            }
            if (!process.isAlive()) {
                try {
                    drain.join(STOP_WAIT.toMillis()); // its last words
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                throw new IOException("passt exited with status " + process.exitValue() + " before it listened on "
                        + sock + ": " + tail(log, process));
            }
            try {
                process.waitFor(10, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while waiting for passt to listen on " + sock, e);
            }
        }
        throw new IOException("passt did not listen on " + sock + " within " + START_WAIT.toMillis() + " ms"
                + (last == null ? "" : " (" + last.getMessage() + ")") + ": " + tail(log, process));
    }

    private static PasstBackend connected(String what, Fd fd, Process process, Thread drain, StringBuilder log, Path dir) {
        try {
            Libc.setNonBlocking(fd, true);
            return new PasstBackend(what, fd, new Readiness(fd), process, drain, log, dir);
        } catch (RuntimeException | Error e) {
            fd.close();
            throw e;
        }
    }

    /** Copies passt's output into {@code log}, keeping the last {@link #LOG_TAIL} characters. */
    private static Thread drain(Process process, StringBuilder log) {
        Thread t = new Thread(() -> {
            try (InputStream in = process.getInputStream()) {
                byte[] buf = new byte[1024];
                int n;
                while ((n = in.read(buf)) > 0) {
                    synchronized (log) {
                        log.append(new String(buf, 0, n, StandardCharsets.UTF_8));
                        if (log.length() > 2 * LOG_TAIL) {
                            log.delete(0, log.length() - LOG_TAIL);
                        }
                    }
                }
            } catch (IOException e) {
                // the pipe closed under us: passt is ending
            }
        }, "passt-log-" + process.pid());
        t.setDaemon(true);
        t.start();
        return t;
    }

    private static String tail(StringBuilder log, Process process) {
        String text;
        synchronized (log) {
            text = log.toString();
        }
        // This passt logs to syslog too, and says so on every line when there is none.
        String lines = text.lines().filter(l -> !l.matches("Failed to send \\d+ bytes to syslog"))
                .filter(l -> !l.isBlank()).reduce((a, b) -> a + " | " + b).orElse("(no output)");
        if (lines.length() > LOG_TAIL) {
            lines = "..." + lines.substring(lines.length() - LOG_TAIL);
        }
        return (process == null ? "" : "passt " + process.pid() + " said: ") + lines;
    }

    /** passt's recent output (empty for a passt Kindling did not start). */
    public String log() {
        return log == null ? "" : tail(log, null);
    }

    @Override
    public Fd readable() {
        return readiness.fd();
    }

    @Override
    public boolean vnetHeader() {
        return false;
    }

    @Override
    public int receive(MemorySegment into) {
        if (txPending()) {
            synchronized (txLock) {
                flush();
            }
        }
        synchronized (rxLock) {
            try {
                return receiveLocked(into);
            } finally {
                readiness.buffered(wholeFrameBuffered());
            }
        }
    }

    private int receiveLocked(MemorySegment into) {
        for (int round = 0; round < 1024; round++) {
            int available = rxEnd - rxStart;
            if (rxSkip > 0 && available > 0) {
                int n = (int) Math.min(rxSkip, available);
                rxStart += n;
                rxSkip -= n;
                continue;
            }
            if (rxSkip == 0 && available >= LENGTH) {
                long length = Integer.toUnsignedLong(rx.get(JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), rxStart));
                if (length > MAX_FRAME) {
                    // passt never sends that: the stream is out of step, and nothing after can be trusted
                    rxStart = rxEnd = 0;
                    end("framing lost (a frame length of " + length + " bytes)");
                    return 0;
                }
                if (length > into.byteSize()) {
                    LOG.log(Level.DEBUG, "{0}: skipping a frame of {1} bytes (room for {2})", what, length, into.byteSize());
                    rxStart += LENGTH;
                    rxSkip = length;
                    continue;
                }
                if (available >= LENGTH + length) {
                    MemorySegment.copy(rx, rxStart + LENGTH, into, 0, length);
                    rxStart += LENGTH + (int) length;
                    if (length == 0) {
                        continue; // an empty frame carries nothing for the guest
                    }
                    return (int) length;
                }
            }
            if (ended || !fill()) {
                return 0;
            }
        }
        return 0;
    }

    /** Reads what the socket has into the buffer; false if nothing came. */
    private boolean fill() {
        if (rxStart == rxEnd) {
            rxStart = rxEnd = 0;
        } else if (rxEnd == RX_CAPACITY || RX_CAPACITY - rxStart < LENGTH + MAX_FRAME) {
            MemorySegment.copy(rx, rxStart, rx, 0, rxEnd - rxStart);
            rxEnd -= rxStart;
            rxStart = 0;
        }
        if (rxEnd == RX_CAPACITY) {
            return false;
        }
        long n;
        try {
            n = Libc.recv(socket, rx.asSlice(rxEnd), RX_CAPACITY - rxEnd, Libc.MSG_DONTWAIT);
        } catch (SyscallException e) {
            end("receive failed: " + e.getMessage());
            return false;
        }
        if (n > 0) {
            rxEnd += (int) n;
            return true;
        }
        if (n == 0 || n == -Errno.ECONNRESET) {
            end("passt closed the connection");
        }
        return false;
    }

    private boolean wholeFrameBuffered() {
        int available = rxEnd - rxStart;
        if (rxSkip > 0) {
            return available > 0;
        }
        if (available < LENGTH) {
            return false;
        }
        long length = Integer.toUnsignedLong(rx.get(JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), rxStart));
        return available >= LENGTH + length;
    }

    @Override
    public boolean send(MemorySegment frame) {
        long length = frame.byteSize();
        if (length == 0 || length > MAX_FRAME || ended) {
            return false;
        }
        synchronized (txLock) {
            if (txStart < txEnd && !flush()) {
                return false; // the previous frame is still going out: this one is dropped whole
            }
            tx.set(JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), 0, (int) length);
            MemorySegment.copy(frame, 0, tx, LENGTH, length);
            txStart = 0;
            txEnd = LENGTH + (int) length;
            long n = write();
            if (n <= 0) {
                txStart = txEnd = 0; // nothing of it went out: dropped whole
                return false;
            }
            if (txStart < txEnd) {
                flush();
            }
            return true;
        }
    }

    private boolean txPending() {
        synchronized (txLock) {
            return txStart < txEnd;
        }
    }

    /** One non-blocking send of the rest of the frame in {@code tx}: bytes sent, 0 if the socket is full, -1 if it is gone. */
    private long write() {
        long n;
        try {
            n = Libc.send(socket, tx.asSlice(txStart), txEnd - txStart, Libc.MSG_DONTWAIT);
        } catch (SyscallException e) {
            end("send failed: " + e.getMessage());
            return -1;
        }
        if (n == -Errno.EAGAIN) {
            return 0;
        }
        if (n < 0) {
            end("passt closed the connection");
            txStart = txEnd = 0;
            return -1;
        }
        txStart += (int) n;
        return n;
    }

    /**
     * Sends what the socket takes now of a partly sent frame, without waiting; true when it is all
     * out. Until then the device thread is also woken when the socket takes writes.
     */
    private boolean flush() {
        while (txStart < txEnd && !ended) {
            if (write() <= 0) {
                break; // the socket is full (or gone)
            }
        }
        boolean done = txStart == txEnd;
        readiness.wakeWhenWritable(!done && !ended);
        return done;
    }

    private void end(String why) {
        if (ended) {
            return;
        }
        ended = true;
        readiness.wakeWhenWritable(false);
        if (readiness.stop()) {
            String status = process == null ? "" : process.isAlive() ? "" : " (exit status " + process.exitValue() + ")";
            LOG.log(Level.WARNING, "{0}: {1}{2}; the guest gets no more frames. {3}", what, why, status,
                    log == null ? "" : tail(log, process));
        }
    }

    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        ended = true;
        readiness.close();
        socket.close();
        stop(process, logDrain);
        if (directory != null) {
            deleteTree(directory);
        }
        arena.close();
    }

    /** Ends passt: SIGTERM, a bounded wait, then SIGKILL; and its log thread. */
    private static void stop(Process process, Thread drain) {
        if (process == null) {
            return;
        }
        boolean interrupted = false;
        try {
            process.destroy();
            try {
                if (!process.waitFor(STOP_WAIT.toMillis(), TimeUnit.MILLISECONDS)) {
                    process.destroyForcibly();
                    process.waitFor(STOP_WAIT.toMillis(), TimeUnit.MILLISECONDS);
                }
            } catch (InterruptedException e) {
                interrupted = true;
                process.destroyForcibly();
            }
            if (drain != null) {
                try {
                    drain.join(STOP_WAIT.toMillis());
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            LOG.log(Level.WARNING, "cannot delete passt directory {0}: {1}", dir, e.getMessage());
        }
    }

    private static Optional<Path> onPath(String tool) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (!dir.isEmpty()) {
                Path p = Path.of(dir, tool);
                if (Files.isRegularFile(p) && Files.isExecutable(p)) {
                    return Optional.of(p);
                }
            }
        }
        return Optional.empty();
    }

    /** The effective user id (from /proc/self/status) is 0. */
    private static boolean runningAsRoot() {
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

    @Override
    public String toString() {
        return "PasstBackend[" + what + "]";
    }
}
