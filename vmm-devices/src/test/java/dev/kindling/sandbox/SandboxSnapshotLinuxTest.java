package dev.kindling.sandbox;

import static dev.kindling.sandbox.TestSandboxes.progress;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.microvm.Microvm;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.testing.HostResources;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Disabled;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Snapshots of a booted Linux sandbox, in memory and on disk: one boot for the class, then clones.
 * The guest counts in a shell loop (its memory and a running process) and has a writable disk.
 */
@Timeout(1800)
@Disabled("restored Linux guests run their timers far too slowly here (a clone's `sleep 0.1` loop barely moves and its"
        + " first exec took minutes in a run of 2026-12-02): under investigation for issue 17")
class SandboxSnapshotLinuxTest {
    /** How many clones run commands at once; the 100 with -Dkindling.snapshot.clones=100. */
    private static final int CLONES = Integer.getInteger("kindling.snapshot.clones", 16);
    private static final Duration WAIT = Duration.ofSeconds(60);
    private static final int DISK_BYTES = 4 << 20;
    private static Path work;
    private static Path disk;
    private static Sandbox parent;
    private static SandboxSnapshot snapshot;
    /** The parent's count and uptime just before the snapshot. */
    private static long countBefore;
    private static double uptimeBefore;

    @BeforeAll
    static void bootAndSnapshot() throws Exception {
        work = Files.createTempDirectory("kindling-snapshot-test-");
        disk = work.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
            f.setLength(DISK_BYTES);
        }
        long t0 = System.nanoTime();
        parent = TestSandboxes.builder("snap-parent").disk(disk, false).unresponsiveAfter(Duration.ofSeconds(60)).build();
        progress(String.format("booted in %.0f s", (System.nanoTime() - t0) / 1e9));
        parent.start("sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; sleep 0.1; done");
        await(parent, "the counter", () -> count(parent) > 2);
        exec(parent, "printf parent-wrote > /dev/vda && sync");
        countBefore = count(parent);
        uptimeBefore = uptime(parent);
        long t1 = System.nanoTime();
        snapshot = parent.snapshot();
        progress(String.format("snapshot in %.1f ms", (System.nanoTime() - t1) / 1e6));
    }

    @AfterAll
    static void close() throws Exception {
        if (snapshot != null) {
            snapshot.close();
        }
        if (parent != null) {
            parent.close();
        }
        if (work != null) {
            try (var all = Files.walk(work)) {
                for (Path p : all.sorted(java.util.Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    private static String exec(Sandbox box, String script) {
        ExecResult r = box.exec(WAIT, "sh", "-c", script);
        assertThat(r.exitCode()).as("%s: %s", script, r.stderr()).isZero();
        return r.stdout().strip();
    }

    private static long count(Sandbox box) {
        String c = exec(box, "cat /count 2>/dev/null || echo 0");
        return Long.parseLong(c);
    }

    private static double uptime(Sandbox box) {
        return Double.parseDouble(exec(box, "cut -d' ' -f1 /proc/uptime"));
    }

    private interface Check {
        boolean ok() throws Exception;
    }

    private static void await(Sandbox box, String what, Check check) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!check.ok()) {
            assertThat(System.nanoTime()).as("waiting for " + what + "; console:\n" + box.console().text()).isLessThan(deadline);
            Thread.sleep(100);
        }
    }

    @Test
    void aCloneGoesOnFromTheSnapshotWithItsProcessesMemoryDiskAndClock() throws Exception {
        long t0 = System.nanoTime();
        try (Sandbox clone = snapshot.newSandbox()) {
            progress(String.format("clone answered its first exec in %.1f ms", (System.nanoTime() - t0) / 1e6));
            long first = count(clone);
            assertThat(first).as("the count in the clone's memory").isGreaterThanOrEqualTo(countBefore);
            await(clone, "the counting loop going on in the clone", () -> count(clone) > first + 2);
            assertThat(uptime(clone)).as("guest time moves forward").isGreaterThan(uptimeBefore);
            assertThat(exec(clone, "echo 3 > /proc/sys/vm/drop_caches; head -c 12 /dev/vda"))
                    .as("the disk as it was at the snapshot, read from the clone's copy").isEqualTo("parent-wrote");
        }
    }

    @Test
    void clonesRunConcurrentlyAndEachSeesOnlyItsOwnWrites() throws Exception {
        HostResources before = HostResources.now();
        ExecutorService pool = Executors.newFixedThreadPool(Math.min(CLONES, 16));
        List<Sandbox> clones = new ArrayList<>();
        try {
            long t0 = System.nanoTime();
            List<Future<Sandbox>> started = new ArrayList<>();
            for (int i = 0; i < CLONES; i++) {
                started.add(pool.submit(snapshot::newSandbox));
            }
            for (Future<Sandbox> f : started) {
                clones.add(f.get(10, TimeUnit.MINUTES));
            }
            progress(String.format("%d clones answering in %.1f s", CLONES, (System.nanoTime() - t0) / 1e9));
            List<Future<String>> wrote = new ArrayList<>();
            for (int i = 0; i < clones.size(); i++) {
                Sandbox c = clones.get(i);
                String mine = "clone-" + i;
                wrote.add(pool.submit(() -> exec(c, "echo " + mine + " > /mine; printf " + mine + " | dd of=/dev/vda bs=512 seek=8 conv=fsync 2>/dev/null;"
                        + " echo 3 > /proc/sys/vm/drop_caches; cat /mine; dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | tr -d '\\0'")));
            }
            for (int i = 0; i < wrote.size(); i++) {
                assertThat(wrote.get(i).get(5, TimeUnit.MINUTES)).isEqualTo("clone-" + i + "\nclone-" + i);
            }
            Set<String> random = new HashSet<>();
            for (Sandbox c : clones) {
                random.add(exec(c, "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'"));
            }
            assertThat(random).as("each clone's entropy pool was reseeded").hasSize(clones.size());
            assertThat(exec(parent, "cat /mine 2>/dev/null || echo none")).as("the parent saw no clone's write").isEqualTo("none");
            byte[] parentDisk = Files.readAllBytes(disk);
            assertThat(new String(parentDisk, 4096, 16, StandardCharsets.ISO_8859_1)).doesNotContain("clone-");
        } finally {
            clones.forEach(Sandbox::close);
            pool.shutdownNow();
            pool.awaitTermination(1, TimeUnit.MINUTES);
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aSnapshotOnDiskIsRestoredAndBrokenOnesAreRefused() throws Exception {
        Path dir = work.resolve("on-disk");
        long countAtSnapshot = count(parent);
        long t0 = System.nanoTime();
        parent.vm().snapshot(dir);
        progress(String.format("snapshot to disk in %.1f ms", (System.nanoTime() - t0) / 1e6));

        t0 = System.nanoTime();
        Microvm restored = Microvm.restore(dir);
        try (Sandbox box = Sandbox.attach(restored, new Sandbox.Settings("restored", java.util.Map.of(), WAIT, WAIT), new byte[16])) {
            progress(String.format("restored from disk to its first exec in %.1f ms", (System.nanoTime() - t0) / 1e6));
            long first = count(box);
            assertThat(first).isGreaterThanOrEqualTo(countAtSnapshot);
            await(box, "the count going on after the restore", () -> count(box) > first + 2);
        }

        HostResources before = HostResources.now();
        Path state = dir.resolve("state");
        byte[] good = Files.readAllBytes(state);
        byte[] flipped = good.clone();
        flipped[flipped.length / 2] ^= 0x40;
        Files.write(state, flipped);
        assertThatThrownBy(() -> Microvm.restore(dir)).isInstanceOf(SnapshotException.class).hasMessageContaining("checksum");
        Files.write(state, good);

        Path memory = dir.resolve("memory");
        long size = Files.size(memory);
        try (RandomAccessFile f = new RandomAccessFile(memory.toFile(), "rw")) {
            f.setLength(size / 2);
        }
        assertThatThrownBy(() -> Microvm.restore(dir)).isInstanceOf(SnapshotException.class).hasMessageContaining("truncated");
        HostResources.now().assertNothingLeftSince(before);
    }
}
