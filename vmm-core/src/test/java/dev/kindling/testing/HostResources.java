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
    /** malloc arenas may add a mapping or two on their own; a leaked guest RAM or run page adds one per VM. */
    private static final long MAPPING_SLACK = 8;

    public static HostResources now() {
        try {
            return new HostResources(count(Path.of("/proc/self/fd")), threadNames(), countMappings());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Asserts that the process holds no more than it held at {@code before}: no descriptor, thread or mapping added. */
    public void assertNothingLeftSince(HostResources before) {
        assertNothingLeftSince(before, MAPPING_SLACK);
    }

    /**
     * As {@link #assertNothingLeftSince(HostResources)}, allowing {@code mappingSlack} mappings either
     * way: for a test of many cycles of busy VMs, over which the JVM itself maps more (code cache, a
     * malloc arena per new thread), while a leak per cycle stays far outside the slack.
     */
    public void assertNothingLeftSince(HostResources before, long mappingSlack) {
        // fewer is no leak: a descriptor of something earlier (a child's pipe, a JDK cache) may close meanwhile
        assertThat(fds).as("open descriptors").isLessThanOrEqualTo(before.fds);
        assertThat(threads).as("threads started since, and still alive").isSubsetOf(before.threads);
        assertThat(mappings).as("mappings").isBetween(before.mappings - mappingSlack, before.mappings + mappingSlack);
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
