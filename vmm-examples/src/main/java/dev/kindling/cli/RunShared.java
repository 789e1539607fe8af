package dev.kindling.cli;

import dev.kindling.devices.ivshmem.IvshmemMemory;
import dev.kindling.devices.virtio.net.NetSwitch;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What one {@code kindling run} shares with its VM and outlives it, closed when the run ends, after
 * the VM: the in-process switches, one per name ({@code --net switch=NAME} and the JSON
 * {@code "switch"}), made when first named; the shared memory of {@code --ivshmem shm=PATH}.
 */
final class RunShared implements AutoCloseable {
    private final Map<String, NetSwitch> switches = new LinkedHashMap<>();
    private final List<IvshmemMemory> memories = new ArrayList<>();

    NetSwitch netSwitch(String name) {
        return switches.computeIfAbsent(name, NetSwitch::new);
    }

    /**
     * The first {@code size} bytes of {@code file} as shared memory, as QEMU's
     * {@code memory-backend-file,share=on}: a missing file is made that size, a smaller one refused.
     */
    IvshmemMemory ivshmemMemory(Path file, long size) {
        try {
            if (!Files.exists(file)) {
                try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
                    f.setLength(size);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot make " + file + ": " + e.getMessage(), e);
        }
        IvshmemMemory m = IvshmemMemory.open(file, size);
        memories.add(m);
        return m;
    }

    @Override
    public void close() {
        RuntimeException failure = null;
        List<AutoCloseable> all = new ArrayList<>(switches.values());
        all.addAll(memories);
        for (AutoCloseable c : all) {
            try {
                c.close();
            } catch (Exception e) {
                RuntimeException r = e instanceof RuntimeException re ? re : new IllegalStateException(e);
                if (failure == null) {
                    failure = r;
                } else {
                    failure.addSuppressed(r);
                }
            }
        }
        switches.clear();
        memories.clear();
        if (failure != null) {
            throw failure;
        }
    }
}
