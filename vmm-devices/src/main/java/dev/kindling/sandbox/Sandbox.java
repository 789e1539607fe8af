package dev.kindling.sandbox;

import dev.kindling.microvm.Console;
import dev.kindling.microvm.Microvm;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;

/**
 * A booted Linux guest with Kindling's agent, for running commands and moving files
 * (docs/agent-protocol.md). {@link #builder()} boots it; {@link #close()} destroys it. When the
 * guest dies, panics or stops answering, every pending and later call fails within seconds with a
 * {@link SandboxException} that says why and carries the console's tail.
 *
 * <p>CONTRACT STUB: to be implemented (issue 16).
 */
public final class Sandbox implements AutoCloseable {
    /** The agent's vsock port. */
    public static final int AGENT_PORT = 52;

    private Sandbox() {
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

    public ExecResult exec(Exec exec) {
        throw new UnsupportedOperationException("contract stub");
    }

    public ExecHandle start(String... argv) {
        return start(Exec.of(argv).withStreamedStdin());
    }

    public ExecHandle start(Exec exec) {
        throw new UnsupportedOperationException("contract stub");
    }

    /** Writes {@code data} to {@code guestPath} (mode 0644), creating parent directories. */
    public void put(String guestPath, byte[] data) {
        put(guestPath, data, 0644);
    }

    public void put(String guestPath, byte[] data, int mode) {
        throw new UnsupportedOperationException("contract stub");
    }

    /** Copies a host file to {@code guestPath}, with the host file's permission bits. */
    public void put(String guestPath, Path hostFile) {
        throw new UnsupportedOperationException("contract stub");
    }

    public void put(String guestPath, Path hostFile, int mode) {
        throw new UnsupportedOperationException("contract stub");
    }

    /** The bytes of {@code guestPath}; a {@link GuestFileException} when it is missing or not a regular file. */
    public byte[] get(String guestPath) {
        throw new UnsupportedOperationException("contract stub");
    }

    public void get(String guestPath, Path hostFile) {
        throw new UnsupportedOperationException("contract stub");
    }

    /** Whether the guest is up and its agent answers. */
    public boolean isAlive() {
        throw new UnsupportedOperationException("contract stub");
    }

    /** The guest console (serial port). */
    public Console console() {
        throw new UnsupportedOperationException("contract stub");
    }

    /** The VM under this sandbox. */
    public Microvm vm() {
        throw new UnsupportedOperationException("contract stub");
    }

    @Override
    public void close() {
        throw new UnsupportedOperationException("contract stub");
    }

    /** Configures a sandbox; {@link #build()} boots it and returns once the agent answers. */
    public static final class Builder {
        private Builder() {
        }

        public Builder name(String name) {
            throw new UnsupportedOperationException("contract stub");
        }

        public Builder memoryMib(long mib) {
            throw new UnsupportedOperationException("contract stub");
        }

        public Builder vcpus(int count) {
            throw new UnsupportedOperationException("contract stub");
        }

        /** Default: the vmlinux of the guest built by scripts/build-guest-kernel.sh. */
        public Builder kernel(Path vmlinux) {
            throw new UnsupportedOperationException("contract stub");
        }

        /** Default: that guest's initramfs, which holds the agent. */
        public Builder initrd(Path initramfs) {
            throw new UnsupportedOperationException("contract stub");
        }

        /** Boots from this ext4 image (read-write): the initramfs mounts it and hands over to the agent in it. */
        public Builder rootDisk(Path ext4Image) {
            throw new UnsupportedOperationException("contract stub");
        }

        /** An extra virtio-blk disk (vdb, vdc, ... after the root disk, or vda, ... without one). */
        public Builder disk(Path image, boolean readOnly) {
            throw new UnsupportedOperationException("contract stub");
        }

        /** Environment for every command (an {@link Exec}'s own entries win). */
        public Builder env(String name, String value) {
            throw new UnsupportedOperationException("contract stub");
        }

        public Builder env(Map<String, String> entries) {
            throw new UnsupportedOperationException("contract stub");
        }

        /** Kernel command-line arguments added to the default ones. */
        public Builder kernelArgs(String args) {
            throw new UnsupportedOperationException("contract stub");
        }

        /** How long {@link #build()} waits for the agent (default 3 minutes). */
        public Builder bootTimeout(Duration timeout) {
            throw new UnsupportedOperationException("contract stub");
        }

        /** How long the agent may leave a heartbeat unanswered before the sandbox is declared hung (default 5 s). */
        public Builder unresponsiveAfter(Duration timeout) {
            throw new UnsupportedOperationException("contract stub");
        }

        public Sandbox build() {
            throw new UnsupportedOperationException("contract stub");
        }
    }
}
