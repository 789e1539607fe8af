package dev.kindling.testing;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;

/**
 * What this process holds (descriptors, threads, mappings), for tests that create and close VMs many
 * times and must find nothing left behind. Threads are the JVM's Java threads, by id (a thread may
 * rename itself: the JDK's process reaper names the child it waits for) with their names to show:
 * Kindling starts no native thread of its own, and the JVM adds and removes GC and JIT threads with
 * the load.
 */
public record HostResources(Map<Integer, String> descriptors, Map<Long, String> threads, long mappings,
                            Map<String, Long> deviceMappings) {
    /** malloc arenas may add a mapping or two on their own; a leaked guest RAM or run page adds one per VM. */
    private static final long MAPPING_SLACK = 8;

    public static HostResources now() {
        try {
            List<String> maps;
            try (Stream<String> s = Files.lines(Path.of("/proc/self/maps"))) {
                maps = s.toList();
            }
            return new HostResources(openDescriptors(), threadNames(), maps.size(), deviceMappings(maps));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * What the process holds once what {@code before} did not hold has had up to 5 s to go: threads
     * that were told to end and descriptors closed by them (a closing VM's device threads) may take
     * a moment. A leak stays and fails the assertion after.
     */
    public static HostResources settled(HostResources before) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        HostResources r = now();
        while ((r.fds() > before.fds() || !r.threadsStartedSince(before).isEmpty()) && System.nanoTime() < deadline) {
            Thread.sleep(100);
            r = now();
        }
        return r;
    }

    /** The threads alive now that were not at {@code before}, as {@code name#id}. */
    public Set<String> threadsStartedSince(HostResources before) {
        Set<String> started = new TreeSet<>();
        threads.forEach((id, name) -> {
            if (!before.threads.containsKey(id)) {
                started.add(name + "#" + id);
            }
        });
        return started;
    }

    /** How many descriptors are open. */
    public long fds() {
        return descriptors.size();
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
        Map<Integer, String> added = new TreeMap<>(descriptors);
        added.entrySet().removeIf(e -> e.getValue().equals(before.descriptors.get(e.getKey())));
        assertThat(fds()).as("open descriptors (added or changed since: %s)", added).isLessThanOrEqualTo(before.fds());
        assertThat(threadsStartedSince(before)).as("threads started since, and still alive").isEmpty();
        Map<String, Long> more = new TreeMap<>(deviceMappings);
        more.entrySet().removeIf(e -> e.getValue() <= before.deviceMappings.getOrDefault(e.getKey(), 0L));
        assertThat(more).as("mappings of memfds, KVM and devices added since (name: count now)").isEmpty();
        assertThat(mappings).as("mappings").isBetween(before.mappings - mappingSlack, before.mappings + mappingSlack);
    }

    /**
     * Mappings of what only a VM maps (guest memory in a memfd, a vCPU's run page, shared memory),
     * counted by name: exact, where the total count moves with the JVM's own mappings.
     */
    private static Map<String, Long> deviceMappings(List<String> maps) {
        Map<String, Long> named = new TreeMap<>();
        for (String line : maps) {
            String[] f = line.trim().split("\\s+", 6);
            if (f.length == 6 && (f[5].startsWith("/memfd:") || f[5].startsWith("anon_inode:") || f[5].startsWith("/dev/"))) {
                named.merge(f[5], 1L, Long::sum);
            }
        }
        return named;
    }

    /** Descriptor number to what it refers to (a path, {@code socket:[inode]}, {@code anon_inode:[eventfd]}). */
    private static Map<Integer, String> openDescriptors() throws IOException {
        Map<Integer, String> fds = new TreeMap<>();
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            for (Path p : (Iterable<Path>) s::iterator) {
                try {
                    fds.put(Integer.parseInt(p.getFileName().toString()), Files.readSymbolicLink(p).toString());
                } catch (NoSuchFileException e) {
                    // closed while listed (the listing's own descriptor among them)
                }
            }
        }
        return fds;
    }

    private static Map<Long, String> threadNames() {
        Map<Long, String> names = new TreeMap<>();
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.isAlive()) {
                names.put(t.threadId(), t.getName());
            }
        }
        return names;
    }
}
