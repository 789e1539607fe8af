package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.bus.AddressSpace;
import dev.kindling.device.Device;
import dev.kindling.devices.ivshmem.IvshmemClient;
import dev.kindling.devices.ivshmem.IvshmemMemory;
import dev.kindling.devices.ivshmem.IvshmemServer;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.Machine;
import dev.kindling.machine.StopReason;
import dev.kindling.testing.HostResources;
import dev.kindling.testing.Require;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * ivshmem-doorbell through the real path: the {@code ivshmem} guest finds the device on Kindling's PCI
 * bus, moves its shared-memory BAR, enables MSI-X and plays ping-pong with another peer of one
 * {@link IvshmemServer}: a second VM, or the host program through {@link IvshmemClient}.
 */
@Timeout(180)
class MicrovmIvshmemTest {
    private static final Duration WAIT = Duration.ofSeconds(90);
    private static final long SIZE = 1 << 20;
    private static final int CTL_MAGIC = 0x6b696e64;
    private static final int ROUNDS = 20;

    @TempDir
    Path dir;

    /** The guest's ports: its peer id (0x614), rounds done (0x618), an error code (0x61c). */
    private static final class GuestPorts implements Device {
        final CompletableFuture<Integer> id = new CompletableFuture<>();
        final CompletableFuture<Integer> done = new CompletableFuture<>();
        volatile long error = -1;

        public String name() {
            return "ivshmem-guest-ports";
        }

        public long read(long offset, int size) {
            return 0;
        }

        public void write(long offset, int size, long value) {
            switch ((int) offset) {
                case 4 -> id.complete((int) value);
                case 8 -> done.complete((int) value);
                case 12 -> {
                    error = value;
                    id.completeExceptionally(new AssertionError("guest error 0x" + Long.toHexString(value)));
                    done.completeExceptionally(new AssertionError("guest error 0x" + Long.toHexString(value)));
                }
                default -> { }
            }
        }
    }

    private static Microvm peer(String name, Path socket, GuestPorts ports) {
        return Microvm.builder().name(name).memoryMib(64).kernel(TestGuests.elf("ivshmem")).ivshmemServer(socket)
                .device(DeviceSpec.pio(0x610, 16, () -> ports)).build();
    }

    /** The host's go block: who rings first, who answers, how often, and 64 bytes of the host's. */
    private static void go(MemorySegment shm, int initiator, int responder, byte[] message) {
        shm.set(ValueLayout.JAVA_INT, 4, initiator);
        shm.set(ValueLayout.JAVA_INT, 8, responder);
        shm.set(ValueLayout.JAVA_INT, 12, ROUNDS);
        MemorySegment.copy(message, 0, shm, ValueLayout.JAVA_BYTE, 16, message.length);
        VarHandle.releaseFence(); // the guest reads the block once it sees the magic
        shm.set(ValueLayout.JAVA_INT, 0, CTL_MAGIC);
    }

    private static byte[] message() {
        byte[] m = new byte[64];
        for (int i = 0; i < m.length; i++) {
            m[i] = (byte) (i * 7 + 3);
        }
        return m;
    }

    private static long sum(byte[] m) {
        long s = 0;
        for (byte b : m) {
            s += b & 0xff;
        }
        return s;
    }

    private static void assertSlot(MemorySegment shm, int id, byte[] message) {
        long slot = 0x100 + id * 0x100L;
        assertThat(shm.get(ValueLayout.JAVA_INT, slot)).as("peer %d's counter", id).isEqualTo(ROUNDS);
        assertThat(Integer.toUnsignedLong(shm.get(ValueLayout.JAVA_INT, slot + 4))).as("peer %d's sum of the host's bytes", id)
                .isEqualTo(sum(message));
        byte[] text = new byte[11];
        MemorySegment.copy(shm, ValueLayout.JAVA_BYTE, slot + 8, text, 0, text.length);
        assertThat(new String(text, StandardCharsets.US_ASCII)).isEqualTo("peer " + id + " done");
    }

    private static void awaitReset(Microvm vm) throws InterruptedException {
        assertThat(vm.awaitExit(WAIT)).as(vm.machine().name()).contains(new StopReason.Reset(StopReason.ResetCause.I8042));
    }

    @Test
    void twoVmsRingEachOthersDoorbellsAndShareTheHostsMemory() throws Exception {
        TestGuests.assumeKvm();
        HostResources before = HostResources.now();
        Path socket = dir.resolve("ivshmem.sock");
        GuestPorts portsA = new GuestPorts(), portsB = new GuestPorts();
        byte[] message = message();
        try (IvshmemServer server = IvshmemServer.start(socket, SIZE, 1);
             IvshmemClient host = IvshmemClient.connect(socket);
             IvshmemMemory shm = host.map();
             Microvm a = peer("ivshmem-a", socket, portsA);
             Microvm b = peer("ivshmem-b", socket, portsB)) {
            a.start();
            b.start();
            int idA = portsA.id.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            int idB = portsB.id.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            assertThat(List.of(idA, idB)).doesNotHaveDuplicates().doesNotContain(host.ownId());
            assertThat(server.peers()).hasSize(3);

            go(shm.segment(), idA, idB, message);
            assertThat(portsA.done.get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo(ROUNDS);
            assertThat(portsB.done.get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo(ROUNDS);
            awaitReset(a);
            awaitReset(b);
            assertSlot(shm.segment(), idA, message);
            assertSlot(shm.segment(), idB, message);
            assertThat(a.deviceErrors()).isEmpty();
            assertThat(b.deviceErrors()).isEmpty();
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void theHostProgramIsAPeerThatRingsAndIsRung() throws Exception {
        TestGuests.assumeKvm();
        Path socket = dir.resolve("ivshmem.sock");
        GuestPorts ports = new GuestPorts();
        byte[] message = message();
        Semaphore rung = new Semaphore(0);
        try (IvshmemServer server = IvshmemServer.start(socket, SIZE, 1);
             IvshmemClient host = IvshmemClient.connect(socket);
             IvshmemMemory shm = host.map();
             AutoCloseable handler = host.onInterrupt(0, rung::release);
             Microvm vm = peer("ivshmem-guest", socket, ports)) {
            vm.start();
            int guest = ports.id.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            go(shm.segment(), host.ownId(), guest, message);
            MemorySegment mine = shm.segment().asSlice(0x100 + host.ownId() * 0x100L, 0x100);
            MemorySegment theirs = shm.segment().asSlice(0x100 + guest * 0x100L, 0x100);
            for (int r = 1; r <= ROUNDS; r++) {
                mine.set(ValueLayout.JAVA_INT, 0, r);
                VarHandle.releaseFence();
                host.notify(guest, 0);
                int round = r;
                assertThat(rung.tryAcquire(WAIT.toSeconds(), TimeUnit.SECONDS))
                        .as(() -> "the guest's answer to ring " + round + " (guest error 0x" + Long.toHexString(ports.error)
                                + ", " + vm.machine().state() + ", device errors " + vm.deviceErrors() + ")")
                        .isTrue();
                assertThat(theirs.get(ValueLayout.JAVA_INT, 0)).isEqualTo(r);
            }
            assertThat(ports.done.get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo(ROUNDS);
            awaitReset(vm);
            assertSlot(shm.segment(), guest, message);
            assertThat(rung.availablePermits()).as("no ring beyond the rounds").isZero();
        }
    }

    /**
     * Interop: a QEMU VM (its {@code pc} machine, {@code -device ivshmem-doorbell}, SeaBIOS placing the
     * BARs) running the same guest joins Kindling's server, and it and a Kindling VM ring each other.
     */
    /**
     * A guest ringing the host's vector 1 in a tight loop slows nobody but itself: meanwhile the host
     * and another VM play the whole ping-pong on vector 0, and the flooder's machine stays healthy.
     */
    @Test
    void aGuestRingingInATightLoopSlowsNobodyButItself() throws Exception {
        TestGuests.assumeKvm();
        Path socket = dir.resolve("ivshmem.sock");
        GuestPorts floodPorts = new GuestPorts(), ports = new GuestPorts();
        byte[] message = message();
        Semaphore rung = new Semaphore(0);
        java.util.concurrent.atomic.AtomicLong flooded = new java.util.concurrent.atomic.AtomicLong();
        try (IvshmemServer server = IvshmemServer.start(socket, SIZE, 2);
             IvshmemClient host = IvshmemClient.connect(socket);
             IvshmemMemory shm = host.map();
             AutoCloseable pong = host.onInterrupt(0, rung::release);
             AutoCloseable flood = host.onInterrupt(1, flooded::incrementAndGet);
             Microvm flooder = peer("ivshmem-flooder", socket, floodPorts);
             Microvm vm = peer("ivshmem-guest", socket, ports)) {
            flooder.start();
            vm.start();
            int floodId = floodPorts.id.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            int guest = ports.id.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            MemorySegment m = shm.segment();
            m.set(ValueLayout.JAVA_INT, 84, floodId + 1);
            m.set(ValueLayout.JAVA_INT, 88, host.ownId());
            go(m, host.ownId(), guest, message);
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (m.get(ValueLayout.JAVA_INT, 0x100 + floodId * 0x100L) < 1024 && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            assertThat(m.get(ValueLayout.JAVA_INT, 0x100 + floodId * 0x100L)).as("the flood is on").isGreaterThanOrEqualTo(1024);

            MemorySegment mine = m.asSlice(0x100 + host.ownId() * 0x100L, 0x100);
            MemorySegment theirs = m.asSlice(0x100 + guest * 0x100L, 0x100);
            for (int r = 1; r <= ROUNDS; r++) {
                mine.set(ValueLayout.JAVA_INT, 0, r);
                VarHandle.releaseFence();
                host.notify(guest, 0);
                assertThat(rung.tryAcquire(WAIT.toSeconds(), TimeUnit.SECONDS)).as("the answer to ring %d during the flood", r)
                        .isTrue();
                assertThat(theirs.get(ValueLayout.JAVA_INT, 0)).isEqualTo(r);
            }
            assertThat(ports.done.get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo(ROUNDS);
            awaitReset(vm);
            assertSlot(m, guest, message);
            int before = m.get(ValueLayout.JAVA_INT, 0x100 + floodId * 0x100L);
            Thread.sleep(200);
            assertThat(m.get(ValueLayout.JAVA_INT, 0x100 + floodId * 0x100L)).as("still flooding").isGreaterThan(before);
            assertThat(flooded.get()).as("the floods reached the host's vector 1 (coalesced)").isPositive();
            assertThat(flooder.machine().state()).isEqualTo(Machine.State.RUNNING);
            assertThat(flooder.deviceErrors()).isEmpty();
            assertThat(vm.deviceErrors()).isEmpty();
        }
    }

    @Test
    void aQemuVmAndAKindlingVmRingEachOther() throws Exception {
        TestGuests.assumeKvm();
        Require.that(Require.onPath("qemu-system-x86_64"), "qemu-system-x86_64 is not installed (Debian: qemu-system-x86)");
        Path socket = dir.resolve("ivshmem.sock");
        GuestPorts ports = new GuestPorts();
        byte[] message = message();
        Process qemu = null;
        try (IvshmemServer server = IvshmemServer.start(socket, SIZE, 1);
             IvshmemClient host = IvshmemClient.connect(socket);
             IvshmemMemory shm = host.map();
             Microvm vm = peer("ivshmem-kindling", socket, ports)) {
            vm.start();
            int kindling = ports.id.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            qemu = new ProcessBuilder("qemu-system-x86_64", "-M", "pc", "-accel", "kvm", "-m", "64", "-nodefaults",
                    "-vga", "none", "-display", "none", "-no-reboot", "-kernel", TestGuests.elf("ivshmem").toString(),
                    "-chardev", "socket,path=" + socket + ",id=ivshmem", "-device", "ivshmem-doorbell,chardev=ivshmem,vectors=1")
                    .redirectErrorStream(true).redirectOutput(dir.resolve("qemu.log").toFile()).start();
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (server.peers().size() < 3 && qemu.isAlive() && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            int other = server.peers().stream().mapToInt(IvshmemServer.Peer::id)
                    .filter(i -> i != host.ownId() && i != kindling).findFirst()
                    .orElseThrow(() -> new AssertionError("QEMU did not join: " + readLog()));
            go(shm.segment(), kindling, other, message);
            assertThat(ports.done.get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo(ROUNDS);
            awaitReset(vm);
            assertThat(qemu.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS)).as("QEMU's guest ended").isTrue();
            assertSlot(shm.segment(), kindling, message);
            assertSlot(shm.segment(), other, message);
        } finally {
            if (qemu != null) {
                qemu.destroyForcibly().waitFor();
            }
        }
    }

    private String readLog() {
        try {
            return Files.readString(dir.resolve("qemu.log"));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    @Test
    void aMachineWithoutPciDevicesExposesNoPciAndOneWithThemListsTheBridge() throws Exception {
        TestGuests.assumeKvm();
        Path kernel = TestGuests.elf("hello");
        List<IoMapEntry> without;
        try (Microvm vm = Microvm.builder().kernel(kernel).build()) {
            without = vm.ioMap();
        }
        assertThat(without).noneMatch(e -> e.device().startsWith("pci"));
        try (IvshmemMemory shared = IvshmemMemory.create("ivshmem-test", 1 << 16);
             Microvm vm = Microvm.builder().kernel(kernel).ivshmem(shared).build()) {
            List<IoMapEntry> with = new ArrayList<>(vm.ioMap());
            assertThat(with).anyMatch(e -> e.space() == AddressSpace.PIO && e.base() == 0xcf8 && e.length() == 8);
            assertThat(with).as("the BARs where the bridge placed them").contains(
                    new IoMapEntry(AddressSpace.MMIO, 0xc000_0000L, 256, "ivshmem0 BAR0", IoMapEntry.Owner.KINDLING),
                    new IoMapEntry(AddressSpace.MMIO, 0x1_0000_0000L, 1 << 16, "ivshmem0 BAR2", IoMapEntry.Owner.KINDLING));
            with.removeIf(e -> e.device().startsWith("pci") || e.device().startsWith("ivshmem"));
            assertThat(with).as("all else as without PCI").isEqualTo(without);
        }
    }
}
