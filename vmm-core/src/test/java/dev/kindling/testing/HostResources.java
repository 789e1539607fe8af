package dev.kindling.testing;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;

/**
 * What this process holds (descriptors, threads, mappings), for tests that create and close VMs many
 * times and must find nothing left behind. Threads are the JVM's Java threads, by name and id:
 * Kindling starts no native thread of its own, and the JVM adds and removes GC and JIT threads with
 * the load.
 */
public record HostResources(long fds, Set<String> threads, long mappings) {
    /**
     * The JVM and malloc add mappings of their own (code cache, an arena per new thread: a loaded host
     * starts more compiler and GC threads); a leaked guest RAM or run page adds one per VM, so over the
     * leak tests' 200 cycles a leak is far outside this.
     */
    private static final long MAPPING_SLACK = 32;

    public static HostResources now() {
        try {
            return new HostResources(count(Path.of("/proc/self/fd")), threadNames(), countMappings());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Asserts that the process holds no more than it held at {@code before}: no descriptor, thread or mapping added. */
    public void assertNothingLeftSince(HostResources before) {
        assertThat(fds).as("open descriptors").isEqualTo(before.fds);
        assertThat(threads).as("threads started since, and still alive").isSubsetOf(before.threads);
        assertThat(mappings).as("mappings").isBetween(before.mappings - MAPPING_SLACK, before.mappings + MAPPING_SLACK);
    }

    private static long count(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.count();
        }
    }

    private static Set<String> threadNames() {
        Set<String> names = new TreeSet<>();
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.isAlive()) {
                names.add(t.getName() + "#" + t.threadId());
            }
        }
        return names;
    }

    private static long countMappings() throws IOException {
        try (Stream<String> s = Files.lines(Path.of("/proc/self/maps"))) {
            return s.count();
        }
    }
}
