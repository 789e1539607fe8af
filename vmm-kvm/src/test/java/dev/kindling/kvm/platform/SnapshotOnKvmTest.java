package dev.kindling.kvm.platform;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.boot.MicrovmLayout;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.Machine;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.testing.HostResources;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Save a running guest's platform, vCPU and memory state and go on from it in a second machine (snapcount). */
@Timeout(60)
class SnapshotOnKvmTest {
    private static final long PORT = 0x6c0;
    private static final Duration WAIT = Duration.ofSeconds(20);

    /** The guest's register-held accumulator after {@code count} steps. */
    private static long acc(long count) {
        int a = 0x12345678;
        for (long i = 0; i < count; i++) {
            a = 5 * a + 1;
        }
        return a & 0xffffffffL;
    }

    /**
     * Checks the guest's reports in order: each count is the one after the count before it (starting after
     * {@code countBefore}), each acc is acc(the latest count). The pause may fall between a step's two
     * writes, so a restored guest may begin with the acc of the saved last count. Returns the last count.
     */
    private static long checkReports(Recorder rec, long countBefore) {
        long count = countBefore;
        for (Recorder.Write w : rec.writes()) {
            if (w.offset() == 0) {
                assertThat(w.value()).as("count after %d", count).isEqualTo(count + 1);
                count = w.value();
            } else {
                assertThat(w.value()).as("acc at count %d", count).isEqualTo(acc(count));
            }
        }
        return count;
    }

    private record Saved(byte[] platform, byte[] vcpu, GuestMemory memory, long lastCount) {}

    private static Saved runAndSave(KvmPlatform.Config config) throws Exception {
        try (Machine m = TestGuests.machine("snapcount", 1, config, false)) {
            Recorder rec = new Recorder("snapcount");
            m.attachPio(PORT, 8, rec);
            m.start();
            assertThat(rec.awaitWrites(2 * 20, WAIT)).as("the guest reported 20 counts").isTrue();
            m.pause();
            long last = checkReports(rec, 0);
            assertThat(last).isEqualTo(rec.values(0).getLast());
            StateWriter p = new StateWriter();
            m.platform().saveState(p);
            StateWriter v = new StateWriter();
            m.vcpus().getFirst().saveState(v);
            GuestMemory copy = MicrovmLayout.anonymousMemory(TestGuests.RAM);
            for (int i = 0; i < copy.regions().size(); i++) {
                MemorySegment from = m.memory().regions().get(i).segment();
                copy.regions().get(i).segment().copyFrom(from);
            }
            return new Saved(p.toByteArray(), v.toByteArray(), copy, last);
        }
    }

    private static Machine restored(KvmPlatform.Config config, Saved s) {
        KvmPlatform platform = KvmPlatform.create(config);
        Machine m = new Machine("snapcount-restored", platform, s.memory(), 1, false);
        m.platform().restoreState(new StateReader(s.platform(), "platform"));
        m.vcpus().getFirst().restoreState(new StateReader(s.vcpu(), "vcpu 0"));
        return m;
    }

    private static void continuesFromTheSnapshot(KvmPlatform.Config config) throws Exception {
        Saved s = runAndSave(config);
        try (Machine m = restored(config, s)) {
            Recorder rec = new Recorder("restored");
            m.attachPio(PORT, 8, rec);
            m.start();
            assertThat(rec.awaitWrites(2 * 10, WAIT)).as("the restored guest reported 10 counts").isTrue();
            m.pause();
            // it goes on from the saved count, not from zero, with the accumulator that belongs to it
            checkReports(rec, s.lastCount());
        }
    }

    @Test
    void splitIrqchipGuestContinuesFromTheSnapshot() throws Exception {
        continuesFromTheSnapshot(new KvmPlatform.Config(IrqchipMode.SPLIT, false));
    }

    @Test
    void kernelIrqchipGuestContinuesFromTheSnapshot() throws Exception {
        continuesFromTheSnapshot(new KvmPlatform.Config(IrqchipMode.KERNEL, true));
    }

    @Test
    void truncatedOrCorruptedStateIsRefused() throws Exception {
        KvmPlatform.Config config = TestGuests.KERNEL_IRQCHIP;
        Saved s = runAndSave(config);
        try (Machine m = new Machine("snapcount-bad", KvmPlatform.create(config), s.memory(), 1, false)) {
            byte[] shortVcpu = Arrays.copyOf(s.vcpu(), s.vcpu().length - 9);
            assertThatThrownBy(() -> m.vcpus().getFirst().restoreState(new StateReader(shortVcpu, "vcpu")))
                    .isInstanceOf(SnapshotException.class);
            byte[] shortPlatform = Arrays.copyOf(s.platform(), s.platform().length / 2);
            assertThatThrownBy(() -> m.platform().restoreState(new StateReader(shortPlatform, "platform")))
                    .isInstanceOf(SnapshotException.class);
            byte[] badMp = s.vcpu().clone();
            badMp[4] = 99; // mp_state, right after the version
            assertThatThrownBy(() -> m.vcpus().getFirst().restoreState(new StateReader(badMp, "vcpu")))
                    .isInstanceOf(SnapshotException.class);
        }
        // a snapshot of one irqchip mode is refused by a machine of the other, naming both
        try (Machine m = new Machine("snapcount-mode", KvmPlatform.create(new KvmPlatform.Config(IrqchipMode.SPLIT, false)),
                MicrovmLayout.anonymousMemory(TestGuests.RAM), 1, false)) {
            assertThatThrownBy(() -> m.platform().restoreState(new StateReader(s.platform(), "platform")))
                    .isInstanceOf(SnapshotException.class).hasMessageContaining("KERNEL").hasMessageContaining("SPLIT");
        }
    }

    /** Save, restore into a new machine, run, close: repeated, it leaves no descriptor, mapping or thread. */
    @Test
    void saveRestoreCyclesLeaveNothingBehind() throws Exception {
        KvmPlatform.Config config = TestGuests.KERNEL_IRQCHIP;
        restoreAndClose(config, runAndSave(config)); // warm up
        HostResources before = HostResources.now();
        for (int i = 0; i < 5; i++) {
            restoreAndClose(config, runAndSave(config));
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    private static void restoreAndClose(KvmPlatform.Config config, Saved s) throws Exception {
        try (Machine m = restored(config, s)) {
            Recorder rec = new Recorder("restored");
            m.attachPio(PORT, 8, rec);
            m.start();
            assertThat(rec.awaitWrites(2, WAIT)).isTrue();
        }
    }
}
