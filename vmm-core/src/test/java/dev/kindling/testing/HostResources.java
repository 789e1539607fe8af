package dev.kindling.testing;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/**
 * What this process holds (descriptors, threads, mappings), for tests that create and close VMs many
 * times and must find nothing left behind.
 */
public record HostResources(long fds, long threads, long mappings) {
    /** malloc arenas may add a mapping or two on their own; a leaked guest RAM or run page adds one per VM. */
    private static final long MAPPING_SLACK = 8;

    public static HostResources now() {
        try {
            return new HostResources(count(Path.of("/proc/self/fd")), countThreads(), countMappings());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Asserts that the process holds what it held at {@code before}. */
    public void assertNothingLeftSince(HostResources before) {
        assertThat(fds).as("open descriptors").isEqualTo(before.fds);
        assertThat(threads).as("threads").isEqualTo(before.threads);
        assertThat(mappings).as("mappings").isBetween(before.mappings - MAPPING_SLACK, before.mappings + MAPPING_SLACK);
    }

    private static long count(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.count();
        }
    }

    /** Native threads, less the JIT compiler threads HotSpot starts and ends with the load. */
    private static long countThreads() throws IOException {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/task"))) {
            return s.filter(t -> !comm(t).matches("C[12] CompilerThre.*")).count();
        }
    }

    private static String comm(Path task) {
        try {
            return Files.readString(task.resolve("comm")).strip();
        } catch (IOException e) {
            return ""; // the thread ended meanwhile
        }
    }

    private static long countMappings() throws IOException {
        try (Stream<String> s = Files.lines(Path.of("/proc/self/maps"))) {
            return s.count();
        }
    }
}
