package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.device.Device;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.Machine;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.SnapshotFile;
import dev.kindling.testing.HostResources;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Snapshots of a whole microVM on real KVM, with the freestanding guest {@code snapserial}, which
 * counts in memory and prints {@code count=N tag=T} lines on the serial port: clones and restores
 * go on from the snapshot's count; a clone's memory is its own; broken snapshots are refused.
 */
class MicrovmSnapshotTest {
    private static final Duration WAIT = Duration.ofSeconds(60);
    private static final Pattern LINE = Pattern.compile("^count=(\\d+) tag=(\\d+)$", Pattern.MULTILINE);
    private static final long TAG = 0x10000;

    @TempDir
    Path tmp;

    private MicrovmBuilder builder(IrqchipMode mode) {
        return Microvm.builder().name("snap").memoryMib(16).irqchip(mode).kernel(TestGuests.elf("snapserial"));
    }

    private static void awaitCount(Microvm vm, long atLeast) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (lastCount(vm.console().text()) < atLeast) {
            assertThat(System.nanoTime()).as("count %d on the console of %s: %s", atLeast, vm.machine().name(),
                    vm.console().text()).isLessThan(deadline);
            Thread.sleep(5);
        }
    }

    /** The last whole line's count, or -1. */
    private static long lastCount(String text) {
        long last = -1;
        Matcher m = LINE.matcher(text);
        while (m.find()) {
            last = Long.parseLong(m.group(1));
        }
        return last;
    }

    /** The first whole line's count of a restored VM's console (its first line may be the end of one cut by the snapshot). */
    private static long firstCount(String text) {
        Matcher m = LINE.matcher(text.startsWith("count=") ? text : text.substring(text.indexOf('\n') + 1));
        return m.find() ? Long.parseLong(m.group(1)) : -1;
    }

    @ParameterizedTest
    @EnumSource(IrqchipMode.class)
    void aCloneGoesOnFromTheSnapshotWithMemoryOfItsOwn(IrqchipMode mode) throws Exception {
        try (Microvm vm = builder(mode).build()) {
            vm.start();
            awaitCount(vm, 20);
            vm.pause();
            long saved = lastCount(vm.console().text());
            try (Snapshot snap = vm.snapshot()) {
                assertThat(vm.state()).as("a paused VM stays paused").isEqualTo(Machine.State.PAUSED);
                vm.resume();
                try (Microvm a = snap.clone(); Microvm b = snap.clone()) {
                    for (Microvm c : List.of(a, b)) {
                        awaitCount(c, saved + 5);
                        assertThat(firstCount(c.console().text())).as("the first count after the snapshot's")
                                .isBetween(saved + 1, saved + 2);
                    }
                    a.machine().memory().write32(TAG, 111);
                    b.machine().memory().write32(TAG, 222);
                    assertThat(a.console().awaitText("tag=111", WAIT)).isTrue();
                    assertThat(b.console().awaitText("tag=222", WAIT)).isTrue();
                    try (Microvm c = snap.clone()) {
                        awaitCount(c, saved + 3);
                        assertThat(c.console().text()).as("the snapshot's memory is untouched by its clones")
                                .doesNotContain("tag=111").doesNotContain("tag=222");
                    }
                    assertThat(a.console().text()).doesNotContain("tag=222");
                    assertThat(vm.console().text()).doesNotContain("tag=111").doesNotContain("tag=222");
                    assertThat(a.machine().memory().privateBytes()).as("a clone's own pages")
                            .isPositive().isLessThan(a.machine().memory().size() / 4);
                }
                awaitCount(vm, saved + 5); // the parent went on too
            }
        }
    }

    @Test
    void aSnapshotOnDiskIsRestoredWithItsDevices() throws Exception {
        Path disk = tmp.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
            f.setLength(1 << 20);
        }
        Path dir = tmp.resolve("snap");
        long saved;
        try (Microvm vm = builder(IrqchipMode.SPLIT).virtioBlk(disk).virtioRng().vsock(7).rtc(OnOffAuto.ON).build()) {
            vm.start();
            awaitCount(vm, 10);
            vm.pause();
            saved = lastCount(vm.console().text());
            vm.snapshot(dir);
        }
        assertThat(dir.resolve("disk0.img")).as("the writable disk's copy").exists();
        try (Microvm back = Microvm.restore(dir)) {
            awaitCount(back, saved + 5);
            assertThat(firstCount(back.console().text())).isBetween(saved + 1, saved + 2);
            assertThat(back.ioMap()).filteredOn(e -> e.base() >= dev.kindling.boot.MicrovmLayout.VIRTIO_MMIO_BASE
                    && e.base() < dev.kindling.boot.MicrovmLayout.IOAPIC_ADDRESS).as("three virtio-mmio transports").hasSize(3);
            assertThat(back.vsock()).isNotNull();
        }
        try (Microvm again = Microvm.restore(dir, SnapshotOverrides.none().withVsockCid(9))) {
            awaitCount(again, saved + 3);
        }
    }

    @Test
    void brokenSnapshotsAreRefusedWithNothingLeft() throws Exception {
        Path dir = tmp.resolve("snap");
        try (Microvm vm = builder(IrqchipMode.SPLIT).build()) {
            vm.start();
            awaitCount(vm, 3);
            vm.snapshot(dir);
        }
        HostResources before = HostResources.now();
        Path state = dir.resolve("state");
        byte[] good = Files.readAllBytes(state);

        byte[] flipped = good.clone();
        flipped[flipped.length / 2] ^= 0x10;
        Files.write(state, flipped);
        assertThatThrownBy(() -> Microvm.restore(dir)).isInstanceOf(SnapshotException.class).hasMessageContaining("checksum");

        Files.write(state, good);
        SnapshotFile.write(state, "0.0.1-other", SnapshotFile.read(state, Microvm.VERSION));
        assertThatThrownBy(() -> Microvm.restore(dir)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("0.0.1-other").hasMessageContaining(Microvm.VERSION);
        Files.write(state, good);

        Path memory = dir.resolve("memory");
        try (RandomAccessFile f = new RandomAccessFile(memory.toFile(), "rw")) {
            f.setLength(f.length() - 4096);
        }
        assertThatThrownBy(() -> Microvm.restore(dir)).isInstanceOf(SnapshotException.class).hasMessageContaining("truncated");

        assertThatThrownBy(() -> Microvm.restore(tmp.resolve("none"))).isInstanceOf(SnapshotException.class);
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aMicrovmWithDevicesOfTheCallersIsNotSnapshottedAndRunsOn() throws Exception {
        Device own = new Device() {
            public String name() {
                return "own";
            }

            public long read(long offset, int size) {
                return 0;
            }

            public void write(long offset, int size, long value) {}
        };
        try (Microvm vm = builder(IrqchipMode.SPLIT).device(DeviceSpec.pio(0x6f0, 4, () -> own)).build()) {
            vm.start();
            awaitCount(vm, 2);
            assertThatThrownBy(vm::snapshot).isInstanceOf(SnapshotException.class).hasMessageContaining("caller's own device");
            assertThatThrownBy(() -> vm.snapshot(tmp.resolve("x"))).isInstanceOf(SnapshotException.class);
            long now = lastCount(vm.console().text());
            awaitCount(vm, now + 3);
            assertThat(vm.state()).isEqualTo(Machine.State.RUNNING);
        }
    }

    @Test
    void cloneCyclesLeaveNothingBehind() throws Exception {
        try (Microvm vm = builder(IrqchipMode.SPLIT).build()) {
            vm.start();
            awaitCount(vm, 2);
            try (Snapshot snap = vm.snapshot()) {
                try (Microvm warm = snap.clone()) {
                    awaitCount(warm, 1);
                }
                HostResources before = HostResources.now();
                for (int i = 0; i < 10; i++) {
                    try (Microvm c = snap.clone()) {
                        awaitCount(c, lastCount(c.console().text()) + 1);
                    }
                }
                HostResources.now().assertNothingLeftSince(before);
            }
        }
    }
}
