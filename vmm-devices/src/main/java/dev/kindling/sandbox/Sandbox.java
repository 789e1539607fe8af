package dev.kindling.sandbox;

import dev.kindling.devices.ivshmem.IvshmemMemory;
import dev.kindling.devices.vfio.PlatformDeviceBackend;
import dev.kindling.devices.vfio.VfioPlatformOptions;
import dev.kindling.devices.virtio.blk.BlkOptions;
import dev.kindling.devices.virtio.vsock.VsockConnection;
import dev.kindling.machine.Machine;
import dev.kindling.microvm.Console;
import dev.kindling.microvm.Microvm;
import dev.kindling.microvm.MicrovmBuilder;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.SocketTimeoutException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermission;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * A booted Linux guest with Kindling's agent, for running commands and moving files
 * (docs/agent-protocol.md). {@link #builder()} boots it; {@link #close()} destroys it. When the
 * guest dies, panics or stops answering, every pending and later call fails within seconds with a
 * {@link SandboxException} that says why and carries the console's tail.
 *
 * <p>Each call opens its own connection to the agent, so calls from several threads run at once.
 * A heartbeat session pings the agent five times per {@link Builder#unresponsiveAfter}, at most once
 * a second; a PING unanswered for that long, while no other session moved a frame either, marks the
 * sandbox hung (a guest busy moving a large file may answer late, but it moves the file).
 */
public final class Sandbox implements AutoCloseable {
    /** The agent's vsock port. */
    public static final int AGENT_PORT = 52;
    /** The guest's vsock CID. */
    static final long GUEST_CID = 3;
    /** Lines of the console that exceptions carry. */
    static final int TAIL_LINES = 40;
    /** The arguments every sandbox kernel gets after the guest's base command line. */
    static final String AGENT_ARGS = "quiet percpu_alloc=page kindling.action=agent";
    /** One connection attempt waits at most this long for the guest; a call retries for {@link #CONNECT_LIMIT}. */
    private static final Duration CONNECT_SLICE = Duration.ofSeconds(10);
    private static final Duration CONNECT_LIMIT = Duration.ofMinutes(1);
    private static final Duration BOOT_SLICE = Duration.ofSeconds(1);
    /** What the agent prints on the console once it listens (docs/agent-protocol.md). */
    static final String READY = "KINDLING-AGENT-READY 1";

    private final Microvm vm;
    private final Agent agent;
    private final Settings settings;
    private final AtomicBoolean closed = new AtomicBoolean();

    private Sandbox(Microvm vm, Agent agent, Settings settings) {
        this.vm = vm;
        this.agent = agent;
        this.settings = settings;
    }

    /** What a sandbox's clones share with it besides the VM. */
    record Settings(String name, Map<String, String> env, Duration bootTimeout, Duration unresponsiveAfter) {
        Settings {
            env = Map.copyOf(env);
        }
    }

    /**
     * A sandbox on {@code vm}, a started clone whose agent already listens: connects, checks the agent
     * answers, and mixes fresh host entropy into the guest's pool (a clone would otherwise draw the
     * same random numbers as its siblings). Closes the VM if that fails.
     */
    static Sandbox attach(Microvm vm, Settings settings, byte[] entropy) {
        AtomicReference<Agent> self = new AtomicReference<>();
        Agent agent = new Agent(settings.name(), () -> connect(vm, self.get()), settings.env(), () -> tail(vm.console()));
        self.set(agent);
        try {
            vm.onExit().thenAccept(r -> agent.fail("guest exited: " + r.describe()));
            agent.start(settings.bootTimeout());
            Session s;
            try {
                // a clone's restore is its boot: many restoring at once on few cores answer late
                s = agent.open(connect(vm, agent, settings.bootTimeout()));
                agent.ping(s);
            } catch (IOException e) {
                throw new SandboxException("sandbox " + settings.name() + " did not answer after its restore: " + e.getMessage(),
                        tail(vm.console()), e);
            }
            agent.watch(s, settings.unresponsiveAfter());
            Sandbox box = new Sandbox(vm, agent, settings);
            ExecResult seeded = box.exec(Exec.of("/bin/sh", "-c", "cat > /dev/urandom").withStdin(entropy));
            if (seeded.exitCode() != 0) {
                throw new SandboxException("sandbox " + settings.name() + " could not reseed its entropy pool: "
                        + seeded.stderr(), tail(vm.console()));
            }
            return box;
        } catch (RuntimeException | Error e) {
            agent.fail("the sandbox did not start");
            vm.close();
            agent.join();
            throw e;
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    public ExecResult exec(String... argv) {
        return exec(Exec.of(argv));
    }

    /** Runs argv; when {@code timeout} passes first the guest process group is killed and the result says {@code timedOut()}. */
    public ExecResult exec(Duration timeout, String... argv) {
        return exec(Exec.of(argv).withTimeout(timeout));
    }

    /**
     * Runs the command to its end and returns its exit code and output. A command the guest cannot
     * start (no such program or working directory) is a {@link SandboxException} naming the errno.
     */
    public ExecResult exec(Exec exec) {
        Objects.requireNonNull(exec, "exec");
        return agent.exec(exec);
    }

    public ExecHandle start(String... argv) {
        return start(Exec.of(argv).withStreamedStdin());
    }

    /**
     * Starts the command and returns at once. Its stdout and stderr hold up to 1 MiB each unread: past
     * that the command waits for the reader, as with a local process, so read both (or close one).
     * An {@link Exec#timeout()} kills it when it passes.
     */
    public ExecHandle start(Exec exec) {
        Objects.requireNonNull(exec, "exec");
        return agent.start(exec);
    }

    /** Writes {@code data} to {@code guestPath} (mode 0644), creating parent directories. */
    public void put(String guestPath, byte[] data) {
        put(guestPath, data, 0644);
    }

    public void put(String guestPath, byte[] data, int mode) {
        Objects.requireNonNull(data, "data");
        agent.put(guestPath, new java.io.ByteArrayInputStream(data), mode);
    }

    /** Copies a host file to {@code guestPath}, with the host file's permission bits. */
    public void put(String guestPath, Path hostFile) {
        int mode;
        try {
            mode = modeOf(Files.getPosixFilePermissions(hostFile));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the host file " + hostFile + ": " + e, e);
        }
        put(guestPath, hostFile, mode);
    }

    public void put(String guestPath, Path hostFile, int mode) {
        try (InputStream in = Files.newInputStream(hostFile)) {
            agent.put(guestPath, in, mode);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the host file " + hostFile + ": " + e, e);
        }
    }

    /** The bytes of {@code guestPath}; a {@link GuestFileException} when it is missing or not a regular file. */
    public byte[] get(String guestPath) {
        return agent.get(guestPath);
    }

    /**
     * Copies {@code guestPath} to {@code hostFile} with the guest file's permission bits, through a
     * temporary file next to it that is renamed over it once complete.
     */
    public void get(String guestPath, Path hostFile) {
        Path dir = hostFile.toAbsolutePath().getParent();
        Path tmp;
        try {
            tmp = Files.createTempFile(dir, "." + hostFile.getFileName(), ".part");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write next to " + hostFile + ": " + e, e);
        }
        boolean done = false;
        try {
            int mode;
            try (OutputStream out = Files.newOutputStream(tmp)) {
                mode = agent.get(guestPath, out, Long.MAX_VALUE);
            }
            Files.setPosixFilePermissions(tmp, permissions(mode));
            Files.move(tmp, hostFile, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            done = true;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + hostFile + ": " + e, e);
        } finally {
            if (!done) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException e) {
                    // nothing more to do: the temporary file's name says what it is
                }
            }
        }
    }

    private static final PosixFilePermission[] BITS = {
        PosixFilePermission.OTHERS_EXECUTE, PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_READ,
        PosixFilePermission.GROUP_EXECUTE, PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_READ,
        PosixFilePermission.OWNER_EXECUTE, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_READ,
    };

    static int modeOf(Set<PosixFilePermission> perms) {
        int mode = 0;
        for (int i = 0; i < BITS.length; i++) {
            if (perms.contains(BITS[i])) {
                mode |= 1 << i;
            }
        }
        return mode;
    }

    static Set<PosixFilePermission> permissions(int mode) {
        Set<PosixFilePermission> perms = EnumSet.noneOf(PosixFilePermission.class);
        for (int i = 0; i < BITS.length; i++) {
            if ((mode & (1 << i)) != 0) {
                perms.add(BITS[i]);
            }
        }
        return perms;
    }

    /** Whether the guest is up and its agent answers. */
    public boolean isAlive() {
        return agent.failure() == null && vm.state() == Machine.State.RUNNING;
    }

    /**
     * Snapshots this sandbox in memory (pausing it briefly); {@link SandboxSnapshot#newSandbox()} starts
     * sandboxes that go on from this moment, each with its own memory, disks and console. Commands
     * running now are not carried over: a clone starts with none.
     */
    public SandboxSnapshot snapshot() {
        return new SandboxSnapshot(vm.snapshot(), settings);
    }

    /** The guest console (serial port). */
    public Console console() {
        return vm.console();
    }

    /** The VM under this sandbox. */
    public Microvm vm() {
        return vm;
    }

    /** Destroys the VM; pending calls fail with "sandbox closed". Waits for the sandbox's threads. Idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            agent.fail("sandbox closed");
            try {
                vm.close();
            } finally {
                agent.join();
            }
        }
    }

    /** The last {@link #TAIL_LINES} lines of the console. */
    static String tail(Console console) {
        List<String> lines = console.text().lines().toList();
        return String.join("\n", lines.subList(Math.max(0, lines.size() - TAIL_LINES), lines.size()));
    }

    /** Connects to the agent, retrying while the guest refuses or does not answer, until the sandbox fails. */
    private static Link connect(Microvm vm, Agent agent) throws IOException {
        return connect(vm, agent, CONNECT_LIMIT);
    }

    private static Link connect(Microvm vm, Agent agent, Duration limit) throws IOException {
        long deadline = System.nanoTime() + limit.toNanos();
        while (true) {
            agent.check();
            try {
                VsockConnection c = vm.vsock().connect(AGENT_PORT, CONNECT_SLICE);
                return Link.of(c);
            } catch (SocketTimeoutException e) {
                if (System.nanoTime() - deadline > 0) {
                    throw e;
                }
            }
        }
    }

    /** Configures a sandbox; {@link #build()} boots it and returns once the agent answers. */
    public static final class Builder {
        private String name = "sandbox";
        private long memoryMib = 128;
        private int vcpus = 1;
        private Path kernel;
        private Path initrd;
        private Path rootDisk;
        private final List<Path> disks = new ArrayList<>();
        private final List<Boolean> readOnly = new ArrayList<>();
        /** Devices beyond the disks, as the machine builder adds them. */
        private final List<Consumer<MicrovmBuilder>> devices = new ArrayList<>();
        private final Map<String, String> env = new LinkedHashMap<>();
        private String kernelArgs = "";
        private Duration bootTimeout = Duration.ofMinutes(3);
        private Duration unresponsiveAfter = Duration.ofSeconds(5);

        private Builder() {
        }

        /**
         * Shares {@code memory} with the guest as an ivshmem-plain PCI device
         * ({@link MicrovmBuilder#ivshmem}): the guest maps it from
         * {@code /sys/bus/pci/devices/<bdf>/resource2}, the host program through
         * {@link IvshmemMemory#segment()}, at memory speed. The memory stays the caller's.
         */
        public Builder ivshmem(IvshmemMemory memory) {
            Objects.requireNonNull(memory, "memory");
            devices.add(b -> b.ivshmem(memory));
            return this;
        }

        /** Makes the guest a peer of the ivshmem server at {@code socket}: {@link MicrovmBuilder#ivshmemServer(Path, boolean)}. */
        public Builder ivshmemServer(Path socket, boolean msix) {
            Objects.requireNonNull(socket, "socket");
            devices.add(b -> b.ivshmemServer(socket, msix));
            return this;
        }

        /**
         * Passes a host platform device bound to vfio-platform to the guest:
         * {@link MicrovmBuilder#vfioPlatform(Path, long, int, VfioPlatformOptions)}. The guest's kernel
         * finds it in the device tree.
         */
        public Builder vfioPlatform(Path sysfsDevice, long guestAddress, int irq, VfioPlatformOptions options) {
            Objects.requireNonNull(sysfsDevice, "sysfsDevice");
            Objects.requireNonNull(options, "options");
            devices.add(b -> b.vfioPlatform(sysfsDevice, guestAddress, irq, options));
            return this;
        }

        /**
         * As {@link #vfioPlatform(Path, long, int, VfioPlatformOptions)}, for a platform device behind the
         * caller's backend: {@link MicrovmBuilder#vfioPlatform(String, Supplier, long, int, VfioPlatformOptions)}.
         */
        public Builder vfioPlatform(String label, Supplier<? extends PlatformDeviceBackend> backend, long guestAddress,
                                    int irq, VfioPlatformOptions options) {
            Objects.requireNonNull(label, "label");
            Objects.requireNonNull(backend, "backend");
            Objects.requireNonNull(options, "options");
            devices.add(b -> b.vfioPlatform(label, backend, guestAddress, irq, options));
            return this;
        }

        /** A name for the VM, its threads and logs (default "sandbox"). */
        public Builder name(String name) {
            this.name = Objects.requireNonNull(name, "name");
            return this;
        }

        /** Guest memory (default 128 MiB). */
        public Builder memoryMib(long mib) {
            if (mib <= 0) {
                throw new IllegalArgumentException("memoryMib must be positive: " + mib);
            }
            this.memoryMib = mib;
            return this;
        }

        public Builder vcpus(int count) {
            if (count < 1) {
                throw new IllegalArgumentException("vcpus must be at least 1: " + count);
            }
            this.vcpus = count;
            return this;
        }

        /** Default: the vmlinux of the guest built by scripts/build-guest-kernel.sh. */
        public Builder kernel(Path vmlinux) {
            this.kernel = Objects.requireNonNull(vmlinux, "vmlinux");
            return this;
        }

        /** Default: that guest's initramfs, which holds the agent. */
        public Builder initrd(Path initramfs) {
            this.initrd = Objects.requireNonNull(initramfs, "initramfs");
            return this;
        }

        /** Boots from this ext4 image (read-write): the initramfs mounts it and hands over to the agent in it. */
        public Builder rootDisk(Path ext4Image) {
            this.rootDisk = Objects.requireNonNull(ext4Image, "ext4Image");
            return this;
        }

        /** An extra virtio-blk disk (vdb, vdc, ... after the root disk, or vda, ... without one). */
        public Builder disk(Path image, boolean readOnly) {
            disks.add(Objects.requireNonNull(image, "image"));
            this.readOnly.add(readOnly);
            return this;
        }

        /** Environment for every command (an {@link Exec}'s own entries win). */
        public Builder env(String name, String value) {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(value, "value");
            if (name.isEmpty() || name.indexOf('=') >= 0 || name.indexOf('\0') >= 0) {
                throw new IllegalArgumentException("environment variable name '" + name + "' is empty or holds '=' or NUL");
            }
            env.put(name, value);
            return this;
        }

        public Builder env(Map<String, String> entries) {
            entries.forEach(this::env);
            return this;
        }

        /** Kernel command-line arguments added to the default ones. */
        public Builder kernelArgs(String args) {
            this.kernelArgs = Objects.requireNonNull(args, "args").strip();
            return this;
        }

        /** How long {@link #build()} waits for the agent (default 3 minutes). */
        public Builder bootTimeout(Duration timeout) {
            this.bootTimeout = positive(timeout, "bootTimeout");
            return this;
        }

        /** How long the agent may leave a heartbeat unanswered before the sandbox is declared hung (default 5 s). */
        public Builder unresponsiveAfter(Duration timeout) {
            this.unresponsiveAfter = positive(timeout, "unresponsiveAfter");
            return this;
        }

        private static Duration positive(Duration d, String what) {
            Objects.requireNonNull(d, what);
            if (d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException(what + " must be positive: " + d);
            }
            return d;
        }

        /** The kernel command line: the guest's base line, the agent's arguments, the root disk's, the caller's. */
        String cmdline(String base) {
            StringBuilder b = new StringBuilder(base).append(' ').append(AGENT_ARGS);
            if (rootDisk != null) {
                b.append(" kindling.root=/dev/vda");
            }
            if (!kernelArgs.isEmpty()) {
                b.append(' ').append(kernelArgs);
            }
            return b.toString();
        }

        /**
         * Boots the guest and waits (up to {@link #bootTimeout}) until its agent prints its ready line on
         * the console and answers a handshake and a PING. A guest that exits first fails at once. On failure nothing is left running and the
         * {@link SandboxException} carries the console's tail.
         *
         * @throws IllegalStateException when no kernel is given and none is built ({@link GuestDir#BUILD_HINT})
         */
        public Sandbox build() {
            GuestDir guest = kernel != null && initrd != null ? null : GuestDir.locate();
            String base = guest != null ? guest.cmdline() : baseCmdline(kernel);
            MicrovmBuilder b = Microvm.builder().name(name).memoryMib(memoryMib).vcpus(vcpus)
                    .kernel(kernel != null ? kernel : guest.vmlinux())
                    .initrd(initrd != null ? initrd : guest.initramfs())
                    .cmdline(cmdline(base)).vsock(GUEST_CID);
            if (rootDisk != null) {
                b.rootDevice(rootDisk, BlkOptions.defaults());
            }
            for (int i = 0; i < disks.size(); i++) {
                b.virtioBlk(disks.get(i), BlkOptions.defaults().withReadOnly(readOnly.get(i)));
            }
            devices.forEach(d -> d.accept(b));
            Microvm vm = b.build();
            AtomicReference<Agent> self = new AtomicReference<>();
            Agent agent = new Agent(name, () -> connect(vm, self.get()), env, () -> tail(vm.console()));
            self.set(agent);
            try {
                return boot(vm, agent);
            } catch (RuntimeException | Error e) {
                agent.fail("the sandbox did not boot");
                vm.close();
                agent.join();
                throw e;
            }
        }

        /**
         * Boots this sandbox once, snapshots it as soon as its agent answers, and closes it: the
         * returned snapshot's {@link SandboxSnapshot#newSandbox()} then starts booted sandboxes without
         * booting a kernel. Close the snapshot when done.
         */
        public SandboxSnapshot snapshotAfterBoot() {
            try (Sandbox booted = build()) {
                return booted.snapshot();
            }
        }

        private Sandbox boot(Microvm vm, Agent agent) {
            vm.onExit().thenAccept(r -> agent.fail("guest exited: " + r.describe()));
            agent.start(bootTimeout);
            vm.start();
            // Connecting only once the agent says it listens: each refused attempt costs the guest
            // kernel work, which is emulated here and slows the boot it waits for.
            boolean ready = false;
            while (true) {
                if (agent.failure() != null) {
                    throw new SandboxException("sandbox " + name + " did not boot: " + agent.failure(), tail(vm.console()));
                }
                if (!ready) {
                    try {
                        ready = vm.console().awaitText(READY, BOOT_SLICE);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new SandboxException("interrupted while sandbox " + name + " booted", tail(vm.console()), e);
                    }
                    continue;
                }
                VsockConnection c;
                try {
                    c = vm.vsock().connect(AGENT_PORT, CONNECT_SLICE);
                } catch (SocketTimeoutException e) {
                    continue;
                } catch (IOException e) {
                    throw new SandboxException("sandbox " + name + " did not boot: " + e.getMessage(), tail(vm.console()), e);
                }
                Session s;
                try {
                    s = agent.open(Link.of(c));
                    agent.ping(s);
                } catch (SandboxException e) {
                    String why = agent.failure() != null ? agent.failure() : e.getMessage();
                    throw new SandboxException("sandbox " + name + " did not boot: " + why, tail(vm.console()), e);
                }
                agent.watch(s, unresponsiveAfter);
                return new Sandbox(vm, agent, new Settings(name, env, bootTimeout, unresponsiveAfter));
            }
        }

        /**
         * A kernel of a built guest dir brings its base line (hosts that emulate guest kernel code need
         * its noxsave and clearcpuid); any other kernel gets the minimal one.
         */
        private static String baseCmdline(Path kernel) {
            Path beside = kernel.toAbsolutePath().resolveSibling("cmdline");
            try {
                return Files.isRegularFile(beside) ? Files.readString(beside).strip() : "console=ttyS0 reboot=k panic=-1";
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + beside + ": " + e.getMessage(), e);
            }
        }
    }
}
