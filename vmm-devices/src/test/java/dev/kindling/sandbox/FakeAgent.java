package dev.kindling.sandbox;

import static java.nio.charset.StandardCharsets.UTF_8;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A stand-in for the C agent on a Unix socket, speaking docs/agent-protocol.md with a few built-in
 * commands, so the client's session logic is tested without a VM:
 * {@code echo ARGS}, {@code env}, {@code pwd}, {@code cat} (stdin to stdout), {@code zeros N} (N bytes
 * of stdout), {@code fail N} (a stderr line, exit N), {@code sleep} (until a signal). Anything else
 * is ENOENT. {@link #hang()} makes it stop answering PINGs.
 */
final class FakeAgent implements AutoCloseable {
    private final ServerSocketChannel server;
    private final Path socket;
    private final Map<String, byte[]> files = new ConcurrentHashMap<>();
    private final Set<SocketChannel> open = ConcurrentHashMap.newKeySet();
    private final List<Thread> threads = new ArrayList<>();
    private final Thread acceptor;
    volatile boolean hung;
    final CountDownLatch sleeping = new CountDownLatch(1);

    FakeAgent(Path dir) throws IOException {
        socket = dir.resolve("agent.sock");
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(socket));
        acceptor = new Thread(this::accept, "fake-agent");
        acceptor.start();
    }

    Link.Connector connector() {
        return () -> {
            SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(socket));
            InputStream in = Channels.newInputStream(c);
            OutputStream out = Channels.newOutputStream(c);
            return new Link() {
                @Override
                public InputStream input() {
                    return in;
                }

                @Override
                public OutputStream output() {
                    return out;
                }

                @Override
                public void close() {
                    try {
                        c.close();
                    } catch (IOException e) {
                        // closed already
                    }
                }
            };
        };
    }

    void hang() {
        hung = true;
    }

    private void accept() {
        try {
            while (true) {
                SocketChannel c = server.accept();
                open.add(c);
                Thread t = new Thread(() -> serve(c), "fake-agent-session");
                synchronized (threads) {
                    threads.add(t);
                }
                t.start();
            }
        } catch (IOException e) {
            // closed
        }
    }

    private static void send(OutputStream out, int type, byte[] body) throws IOException {
        synchronized (out) {
            Frames.write(out, type, body);
            out.flush();
        }
    }

    private static void error(OutputStream out, int errno, String message) throws IOException {
        send(out, Frames.ERROR, Frames.body().u32(errno).string(message).build());
    }

    private void serve(SocketChannel c) {
        try (c) {
            InputStream in = Channels.newInputStream(c);
            OutputStream out = Channels.newOutputStream(c);
            Frames.Frame hello = Frames.read(in);
            if (hello == null || hello.type() != Frames.HELLO) {
                error(out, Frames.EPROTO, "first frame is not HELLO");
                return;
            }
            send(out, Frames.HELLO, Frames.body().u32(1).string("fake-agent 1").build());
            Frames.Frame f = Frames.read(in);
            while (f != null && f.type() == Frames.PING) {
                while (hung) {
                    Thread.sleep(50);
                }
                send(out, Frames.PONG, f.body());
                f = Frames.read(in);
            }
            if (f == null) {
                return;
            }
            switch (f.type()) {
                case Frames.EXEC -> exec(f, in, out);
                case Frames.PUT -> put(f, in, out);
                case Frames.GET -> get(f, out);
                default -> error(out, Frames.EPROTO, "unexpected " + f);
            }
        } catch (IOException | InterruptedException e) {
            // the host went away
        } finally {
            open.remove(c);
        }
    }

    private void exec(Frames.Frame f, InputStream in, OutputStream out) throws IOException, InterruptedException {
        Frames.Body b = f.reader();
        long flags = b.u32("flags");
        String cwd = b.string("cwd");
        List<String> argv = new ArrayList<>();
        for (long i = b.u32("argc"); i > 0; i--) {
            argv.add(b.string("arg"));
        }
        List<String> env = new ArrayList<>();
        for (long i = b.u32("envc"); i > 0; i--) {
            env.add(b.string("env"));
        }
        b.end();
        String cmd = argv.getFirst();
        if (!Set.of("echo", "env", "pwd", "cat", "zeros", "fail", "sleep").contains(cmd)) {
            error(out, 2, cmd + ": No such file or directory");
            return;
        }
        send(out, Frames.STARTED, Frames.body().u32(4242).build());
        int status = 0;
        int signal = 0;
        switch (cmd) {
            case "echo" -> send(out, Frames.STDOUT, (String.join(" ", argv.subList(1, argv.size())) + "\n").getBytes(UTF_8));
            case "env" -> send(out, Frames.STDOUT, (String.join("\n", env) + "\n").getBytes(UTF_8));
            case "pwd" -> send(out, Frames.STDOUT, ((cwd.isEmpty() ? "/" : cwd) + "\n").getBytes(UTF_8));
            case "cat" -> {
                if ((flags & 1) == 0) {
                    break; // stdin is /dev/null
                }
                while (true) {
                    Frames.Frame s = Frames.read(in);
                    if (s == null) {
                        return;
                    }
                    if (s.type() == Frames.SIGNAL) {
                        signal = (int) s.reader().u32("signo");
                        break;
                    }
                    if (s.body().length == 0) {
                        break;
                    }
                    send(out, Frames.STDOUT, s.body());
                }
            }
            case "zeros" -> {
                long n = Long.parseLong(argv.get(1));
                byte[] chunk = new byte[64 << 10];
                for (long sent = 0; sent < n; sent += chunk.length) {
                    send(out, Frames.STDOUT, java.util.Arrays.copyOf(chunk, (int) Math.min(chunk.length, n - sent)));
                }
                send(out, Frames.STDERR, "done\n".getBytes(UTF_8));
            }
            case "fail" -> {
                send(out, Frames.STDERR, "failing\n".getBytes(UTF_8));
                status = Integer.parseInt(argv.get(1));
            }
            case "sleep" -> {
                sleeping.countDown();
                while (true) {
                    Frames.Frame s = Frames.read(in);
                    if (s == null) {
                        return; // host closed: the process is killed
                    }
                    if (s.type() == Frames.SIGNAL) {
                        signal = (int) s.reader().u32("signo");
                        break;
                    }
                }
            }
            default -> throw new IllegalStateException(cmd);
        }
        send(out, Frames.EXIT, Frames.body().u32(signal != 0 ? 1 : 0).u32(signal != 0 ? signal : status).build());
    }

    private void put(Frames.Frame f, InputStream in, OutputStream out) throws IOException {
        Frames.Body b = f.reader();
        long mode = b.u32("mode");
        String path = b.string("path");
        b.end();
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        while (true) {
            Frames.Frame d = Frames.read(in);
            if (d == null || d.type() != Frames.DATA) {
                error(out, Frames.EPROTO, "expected DATA");
                return;
            }
            if (d.body().length == 0) {
                break;
            }
            data.writeBytes(d.body());
        }
        if (!path.startsWith("/")) {
            error(out, 22, "relative path");
            return;
        }
        files.put(path, data.toByteArray());
        files.put(path + "#mode", new byte[] {(byte) (mode >> 8), (byte) mode});
        send(out, Frames.OK, new byte[0]);
    }

    private void get(Frames.Frame f, OutputStream out) throws IOException {
        String path = f.reader().string("path");
        byte[] data = files.get(path);
        if (data == null) {
            error(out, 2, "No such file or directory");
            return;
        }
        byte[] m = files.get(path + "#mode");
        int mode = ((m[0] & 0xff) << 8) | (m[1] & 0xff);
        send(out, Frames.FILE, Frames.body().u64(data.length).u32(mode).build());
        for (int at = 0; at < data.length; at += 100_000) {
            send(out, Frames.DATA, java.util.Arrays.copyOfRange(data, at, Math.min(data.length, at + 100_000)));
        }
        send(out, Frames.DATA, new byte[0]);
    }

    @Override
    public void close() throws Exception {
        hung = false;
        server.close();
        for (SocketChannel c : open) {
            c.close();
        }
        acceptor.join(TimeUnit.SECONDS.toMillis(10));
        synchronized (threads) {
            for (Thread t : threads) {
                t.join(TimeUnit.SECONDS.toMillis(10));
            }
        }
        Files.deleteIfExists(socket);
    }
}
