package dev.kindling.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;
import dev.kindling.testing.FakePlatform;
import dev.kindling.testing.FakePlatform.Access;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Saving a paused machine's state and restoring it into a new one of the same configuration. */
class MachineStateTest {
    /** A part whose state is one number. */
    private static final class Counter implements Stateful {
        long value;

        @Override
        public void saveState(StateWriter out) {
            out.putLong(value);
        }

        @Override
        public void restoreState(StateReader in) {
            value = in.getLong();
        }
    }

    private static Machine machine(int vcpus, Counter... parts) {
        GuestMemory memory = new GuestMemory(List.of(MemoryRegion.anonymous(0, 0x10000)));
        Machine m = new Machine("vm", new FakePlatform(), memory, vcpus, false);
        for (int i = 0; i < parts.length; i++) {
            m.addStateful("part" + i, parts[i]);
        }
        return m;
    }

    private static FakePlatform platform(Machine m) {
        return (FakePlatform) m.platform();
    }

    private static void awaitPosition(FakePlatform.FakeVcpu v, int position) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (v.position() < position) {
            assertThat(System.nanoTime()).as("vCPU reaching script position " + position).isLessThan(deadline);
            Thread.sleep(1);
        }
    }

    @Test
    void aRestoredMachineHasThePlatformsTheVcpusAndThePartsState() throws InterruptedException {
        Counter a = new Counter(), b = new Counter();
        MachineState saved;
        try (Machine m = machine(2, a, b)) {
            platform(m).clock = 1234;
            platform(m).vcpu(1).script(Access.out(0x80, 1, 1), Access.out(0x80, 1, 2));
            a.value = 7;
            b.value = -1;
            m.start();
            awaitPosition(platform(m).vcpu(1), 2);
            m.pause();
            saved = m.saveState();
            m.resume();
        }
        assertThat(saved.partNames()).containsExactly("part0", "part1");

        StateWriter out = new StateWriter();
        saved.write(out);
        MachineState reread = MachineState.read(new StateReader(out.toByteArray(), "test"));

        Counter a2 = new Counter(), b2 = new Counter();
        try (Machine m = machine(2, a2, b2)) {
            platform(m).vcpu(1).script(Access.out(0x80, 1, 1), Access.out(0x80, 1, 2));
            m.restoreState(reread);
            assertThat(platform(m).clock).isEqualTo(1234);
            assertThat(platform(m).vcpu(0).position()).isZero();
            assertThat(platform(m).vcpu(1).position()).isEqualTo(2);
            assertThat(a2.value).isEqualTo(7);
            assertThat(b2.value).isEqualTo(-1);
        }
    }

    @Test
    void onlyAPausedMachineIsSavedAndOnlyANewOneRestored() {
        try (Machine m = machine(1)) {
            assertThatThrownBy(m::saveState).isInstanceOf(IllegalStateException.class).hasMessageContaining("pause it");
            m.start();
            assertThatThrownBy(m::saveState).isInstanceOf(IllegalStateException.class);
            m.pause();
            MachineState s = m.saveState();
            assertThatThrownBy(() -> m.restoreState(s)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("only a new machine");
        }
    }

    @Test
    void aStateOfAnotherConfigurationIsRefusedByName() {
        MachineState saved;
        try (Machine m = machine(1, new Counter())) {
            m.start();
            m.pause();
            saved = m.saveState();
        }
        try (Machine twoVcpus = machine(2, new Counter())) {
            assertThatThrownBy(() -> twoVcpus.restoreState(saved)).isInstanceOf(SnapshotException.class)
                    .hasMessageContaining("1 vCPU(s)").hasMessageContaining("has 2");
        }
        try (Machine otherParts = machine(1, new Counter(), new Counter())) {
            assertThatThrownBy(() -> otherParts.restoreState(saved)).isInstanceOf(SnapshotException.class)
                    .hasMessageContaining("[part0]").hasMessageContaining("[part0, part1]");
        }
    }

    @Test
    void aShortOrLongPartStateIsCorruption() {
        MachineState saved;
        try (Machine m = machine(1, new Counter())) {
            m.start();
            m.pause();
            saved = m.saveState();
        }
        byte[] part = saved.parts().getFirst().state();
        for (byte[] bad : List.of(Arrays.copyOf(part, part.length - 1), Arrays.copyOf(part, part.length + 1))) {
            MachineState broken = new MachineState(saved.platform(), saved.vcpus(),
                    List.of(new MachineState.Part("part0", bad)));
            try (Machine m = machine(1, new Counter())) {
                assertThatThrownBy(() -> m.restoreState(broken)).isInstanceOf(SnapshotException.class)
                        .hasMessageContaining("part0 of vm");
            }
        }
    }
}
