package dev.kindling.kvm.platform;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.boot.CmdLine;
import dev.kindling.boot.DirectBoot;
import dev.kindling.boot.MicrovmLayout;
import dev.kindling.bus.AddressSpace;
import dev.kindling.device.Device;
import dev.kindling.device.IoEvent;
import dev.kindling.kvm.Capability;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.Machine;
import dev.kindling.machine.StopReason;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemorySlot;
import dev.kindling.sys.Mapping;
import dev.kindling.testing.Require;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.time.Duration;
import java.util.List;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Device memory slots and ioeventfd registrations on real KVM, as guests see them. */
@Timeout(120)
class MemorySlotsOnKvmTest {
    private static final Duration WAIT = Duration.ofSeconds(60);
    private static final long SLOT = 0xe0000000L, MOVED = 0xe0100000L;

    private static StopReason run(Machine m) throws InterruptedException {
        m.start();
        return m.awaitExit(WAIT).orElseThrow(() -> new AssertionError(m.name() + " did not end within " + WAIT));
    }

    @Test
    void guestReadsAReadOnlySlotItsWritesExitAsMmioAndTheSlotMoves() throws Exception {
        try (Mapping host = Mapping.anonymous(0x1000);
                Machine m = TestGuests.machine("slot", 1, new KvmPlatform.Config(IrqchipMode.SPLIT, false), true)) {
            Require.that(((KvmPlatform) m.platform()).kvm().hasExtension(Capability.READONLY_MEM), "KVM lacks KVM_CAP_READONLY_MEM");
            host.segment().set(ValueLayout.JAVA_INT, 0, 0xc0ffee01);
            MemorySlot slot = m.platform().mapMemory(SLOT, host.segment(), true);
            assertThat(slot.readOnly()).isTrue();
            assertThat(slot.size()).isEqualTo(0x1000);
            Recorder mmio = new Recorder("behind-the-slot").answer(0, 0xabcd0000L);
            m.attachMmio(SLOT, 0x1000, mmio);
            Recorder report = new Recorder("report");
            Device mover = new Device() {
                @Override
                public String name() {
                    return "mover";
                }

                @Override
                public long read(long offset, int size) {
                    slot.move(MOVED); // on the vCPU thread, between two guest accesses
                    return 0;
                }

                @Override
                public void write(long offset, int size, long value) {}
            };
            m.attachPio(0x680, 4, report);
            m.attachPio(0x684, 4, mover);
            // strict MMIO: an access that reached neither the slot nor the device would stop the machine
            assertThat(run(m)).isInstanceOf(StopReason.Reset.class);
            assertThat(report.values(0)).containsExactly(0xc0ffee01L, 0xc0ffee01L, 0xc0ffee01L, 0xabcd0000L);
            assertThat(mmio.writes()).containsExactly(new Recorder.Write(0, 4, 0x12345678L));
            assertThat(host.segment().get(ValueLayout.JAVA_INT, 0)).as("host memory behind a read-only slot").isEqualTo(0xc0ffee01);
            assertThat(slot.guestAddress()).isEqualTo(MOVED);
            slot.close();
        }
    }

    @Test
    void slotsRefuseOverlapsAndBadPlacementAndReuseTheirNumbers() throws Exception {
        try (Mapping host = Mapping.anonymous(0x4000); Machine m = TestGuests.machine("hello")) {
            var p = m.platform();
            MemorySegment seg = host.segment();
            assertThatThrownBy(() -> p.mapMemory(0x100000, seg, false))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("overlaps guest RAM");
            MemorySlot a = p.mapMemory(SLOT, seg.asSlice(0, 0x2000), false);
            assertThatThrownBy(() -> p.mapMemory(SLOT + 0x1000, seg.asSlice(0x2000, 0x2000), false))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("overlaps device slot");
            assertThatThrownBy(() -> p.mapMemory(SLOT + 0x2800, seg.asSlice(0x2000, 0x1000), false))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("page-aligned");
            assertThatThrownBy(() -> p.mapMemory(MOVED, seg.asSlice(0x800, 0x1000), false))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("aligned pages");
            assertThatThrownBy(() -> p.mapMemory(MOVED, MemorySegment.ofArray(new byte[0x1000]), false))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("heap");
            MemorySlot b = p.mapMemory(MOVED, seg.asSlice(0x2000, 0x2000), false);
            assertThatThrownBy(() -> b.move(SLOT + 0x1000)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("overlaps device slot");
            assertThat(b.guestAddress()).isEqualTo(MOVED);
            a.close();
            b.move(SLOT + 0x1000); // free now
            b.close();
            b.close();
            assertThatThrownBy(() -> b.move(MOVED)).isInstanceOf(IllegalStateException.class);
            // far more slots than KVM has, one at a time: numbers are reused
            for (int i = 0; i < 1000; i++) {
                p.mapMemory(SLOT, seg, i % 2 == 0).close();
            }
        }
    }

    @Test
    void e820OfAMachineWithADeviceSlotListsOnlyRam() throws Exception {
        TestGuests.assumeKvm();
        byte[] image = Files.readAllBytes(TestGuests.elf("pvhinfo"));
        KvmPlatform platform = KvmPlatform.create(TestGuests.KERNEL_IRQCHIP);
        GuestMemory memory;
        try {
            memory = MicrovmLayout.anonymousMemory(TestGuests.RAM);
        } catch (RuntimeException e) {
            platform.close();
            throw e;
        }
        try (Mapping host = Mapping.anonymous(0x10000); Machine m = new Machine("e820", platform, memory, 1, false)) {
            // the slot exists before the boot tables are written from the machine's memory
            MemorySlot slot = m.platform().mapMemory(SLOT, host.segment(), false);
            DirectBoot.Result boot = DirectBoot.boot(memory, image, null, new CmdLine(), 1);
            m.vcpus().getFirst().setBootState(boot.bsp());
            m.attachPio(0x64, 1, new Recorder("reset-port")
                    .onWrite(0, v -> m.requestExit(new StopReason.Reset(StopReason.ResetCause.I8042))));
            Recorder ports = new Recorder("start-info");
            m.attachPio(0x660, 8, ports);
            assertThat(run(m)).isInstanceOf(StopReason.Reset.class);
            List<Long> w = ports.values(0);
            assertThat(w.get(3)).as("memmap entries").isEqualTo(3L);
            // addr lo, hi, size lo, hi, type: RAM, the EBDA/BIOS hole, RAM; nothing at the slot
            assertThat(w.subList(4, 19)).containsExactly(
                    0L, 0L, 0x9fc00L, 0L, 1L,
                    0x9fc00L, 0L, 0x100000L - 0x9fc00L, 0L, 2L,
                    0x100000L, 0L, TestGuests.RAM - 0x100000L, 0L, 1L);
            assertThat(memory.regions()).allMatch(r -> r.guestAddress() + r.size() <= SLOT);
            slot.close();
        }
    }

    @Test
    void aRemovedIoeventfdLetsWritesReachTheBusAgain() throws Exception {
        try (Machine m = TestGuests.machine("ioevent")) {
            IoEvent e = m.platform().ioEvent(AddressSpace.PIO, 0x620, 2, OptionalLong.of(0x1234));
            e.close();
            e.close();
            assertThat(e.eventFd().fd().isOpen()).isFalse();
            Recorder bus = new Recorder("ioevent-port");
            m.attachPio(0x620, 2, bus);
            m.attachPio(0x624, 4, new Recorder("done"));
            assertThat(run(m)).isInstanceOf(StopReason.Reset.class);
            assertThat(bus.values(0)).hasSize(100).containsOnly(0x1234L);
        }
    }

    @Test
    void anIoeventfdRegisteredAgainTakesTheWritesAsAVirtioResetWould() throws Exception {
        try (Machine m = TestGuests.machine("ioevent")) {
            var p = m.platform();
            p.ioEvent(AddressSpace.PIO, 0x620, 2, OptionalLong.of(0x1234)).close();
            IoEvent again = p.ioEvent(AddressSpace.PIO, 0x620, 2, OptionalLong.of(0x1234));
            Recorder bus = new Recorder("ioevent-port");
            m.attachPio(0x620, 2, bus);
            m.attachPio(0x624, 4, new Recorder("done"));
            assertThat(run(m)).isInstanceOf(StopReason.Reset.class);
            assertThat(bus.writes()).isEmpty();
            assertThat(again.eventFd().read()).isEqualTo(100);
            again.close();
        }
    }
}
