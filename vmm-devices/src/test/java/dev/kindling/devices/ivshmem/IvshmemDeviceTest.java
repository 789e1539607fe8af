package dev.kindling.devices.ivshmem;

import static dev.kindling.devices.ivshmem.IvshmemDevice.DOORBELL;
import static dev.kindling.devices.ivshmem.IvshmemDevice.INTRMASK;
import static dev.kindling.devices.ivshmem.IvshmemDevice.INTRSTATUS;
import static dev.kindling.devices.ivshmem.IvshmemDevice.IVPOSITION;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kindling.devices.pci.PciBar;
import dev.kindling.devices.pci.PciCapability;
import dev.kindling.sys.EventFd;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class IvshmemDeviceTest {
    private final IvshmemFakes.Context ctx = new IvshmemFakes.Context();
    private final IvshmemMemory memory = IvshmemMemory.create("ivshmem-dev-test", 1 << 20);
    private final IvshmemFakes.Peers peers = new IvshmemFakes.Peers(3, 2);
    private final BlockingQueue<Integer> raised = new LinkedBlockingQueue<>();
    private final List<String> msixBarCalls = new CopyOnWriteArrayList<>();

    @AfterEach
    void tearDown() {
        peers.close();
        memory.close();
    }

    private IvshmemDevice.Msix msix() {
        PciCapability cap = new PciCapability() {
            @Override public int id() { return 0x11; }
            @Override public int length() { return 12; }
            @Override public long read(int offset, int size) { return 0; }
            @Override public void write(int offset, int size, long value) {}
        };
        IvshmemDevice.BarDelegate bar = new IvshmemDevice.BarDelegate() {
            @Override public long read(long offset, int size) { msixBarCalls.add("r " + offset + " " + size); return 0x55; }
            @Override public void write(long offset, int size, long value) { msixBarCalls.add("w " + offset + " " + size + " " + value); }
        };
        return new IvshmemDevice.Msix(raised::add, bar, cap);
    }

    private static int reg(IvshmemDevice d, int offset) {
        return (int) d.readBar(0, offset, 4);
    }

    @Test
    void idsBarsAndCapabilities() {
        try (IvshmemDevice d = IvshmemDevice.doorbell(ctx, memory, peers, 2, msix())) {
            assertEquals(0x1af4, d.id().vendorId());
            assertEquals(0x1110, d.id().deviceId());
            assertEquals(0x050000, d.id().classCode());
            assertEquals(1, d.id().revision());
            assertEquals(0x1af4, d.id().subsystemVendorId());
            assertEquals(0x1100, d.id().subsystemId());
            assertEquals(List.of(new PciBar(0, 256, PciBar.Kind.MEMORY32, false),
                    new PciBar(1, 4096, PciBar.Kind.MEMORY32, false),
                    new PciBar(2, 1 << 20, PciBar.Kind.MEMORY64, true)), d.bars());
            assertEquals(0, d.interruptPin());
            assertEquals(1, d.capabilities().size());
            assertEquals(0x55, d.readBar(1, 16, 4));
            d.writeBar(1, 12, 4, 1);
            assertEquals(List.of("r 16 4", "w 12 4 1"), msixBarCalls);
        }
        int threadsBefore = ctx.threads.made().size();
        try (IvshmemDevice d = IvshmemDevice.plain(ctx, memory)) {
            assertEquals(List.of(new PciBar(0, 256, PciBar.Kind.MEMORY32, false),
                    new PciBar(2, 1 << 20, PciBar.Kind.MEMORY64, true)), d.bars());
            assertEquals(0, d.interruptPin());
            assertEquals(List.of(), d.capabilities());
            assertEquals(0, reg(d, IVPOSITION), "QEMU's plain reads 0");
            assertEquals(threadsBefore, ctx.threads.made().size(), "plain has no thread");
        }
    }

    @Test
    void registersAndTheIntxLevel() {
        try (IvshmemDevice d = IvshmemDevice.doorbell(ctx, memory, peers, 2, null)) {
            assertEquals(1, d.interruptPin());
            assertEquals(3, reg(d, IVPOSITION));
            assertEquals(0xffff_ffffL, d.readBar(0, 2, 4), "a misaligned read reads all ones");
            d.writeBar(0, INTRMASK, 4, 0x3);
            assertEquals(3, reg(d, INTRMASK));
            assertFalse(ctx.irq.level());
            d.writeBar(0, INTRSTATUS, 4, 0x2);
            assertTrue(ctx.irq.level(), "status & mask != 0");
            d.writeBar(0, INTRMASK, 4, 0x1);
            assertFalse(ctx.irq.level(), "masked");
            d.writeBar(0, INTRMASK, 4, 0x2);
            assertTrue(ctx.irq.level());
            assertEquals(2, reg(d, INTRSTATUS));
            assertFalse(ctx.irq.level(), "a read clears the status and lowers the line");
            assertEquals(0, reg(d, INTRSTATUS));
            d.writeBar(0, INTRSTATUS, 2, 0x2); // not a 32-bit access: ignored
            assertEquals(0, reg(d, INTRSTATUS));
            d.writeBar(0, INTRSTATUS, 4, 0x2);
            d.reset();
            assertEquals(0, reg(d, INTRMASK));
            assertEquals(0, reg(d, INTRSTATUS));
            assertFalse(ctx.irq.level());
        }
    }

    @Test
    void doorbellSignalsExactlyThatPeersEventFd() {
        List<EventFd> five = peers.addPeer(5, 2);
        try (IvshmemDevice d = IvshmemDevice.doorbell(ctx, memory, peers, 2, msix())) {
            List<EventFd> seven = peers.addPeer(7, 2); // after watch: reaches the device on the server thread
            d.writeBar(0, DOORBELL, 4, 5 << 16 | 1);
            assertEquals(0, five.get(0).read());
            assertEquals(1, five.get(1).read());
            assertEquals(0, seven.get(0).read());
            assertEquals(0, seven.get(1).read());
            d.writeBar(0, DOORBELL, 4, 7 << 16);
            d.writeBar(0, DOORBELL, 4, 7 << 16);
            assertEquals(2, seven.get(0).read());
            assertEquals(0, five.get(0).read() + five.get(1).read() + seven.get(1).read());

            // unknown peer, unknown vector, a peer that left: ignored
            d.writeBar(0, DOORBELL, 4, 9 << 16);
            d.writeBar(0, DOORBELL, 4, 5 << 16 | 2);
            d.writeBar(0, DOORBELL, 4, 0xffff << 16 | 0xffff);
            peers.leave(7);
            d.writeBar(0, DOORBELL, 4, 7 << 16);
            assertEquals(0, five.get(0).read() + five.get(1).read());
            assertEquals(0, reg(d, DOORBELL), "write-only");
            assertEquals(List.of(), ctx.fatals);
        }
    }

    @Test
    void doorbellsAreBoundToThePeersEventFdsWhileBar0Decodes() {
        ctx.binds = true;
        peers.addPeer(5, 1);
        try (IvshmemDevice d = IvshmemDevice.doorbell(ctx, memory, peers, 2, msix())) {
            assertEquals(List.of(), ctx.bindCalls, "nothing while BAR0 decodes nowhere");
            d.barPlaced(0, OptionalLong.of(0xc000_0000L));
            assertEquals(java.util.Set.of("bind 0xc000000c 0x30000", "bind 0xc000000c 0x30001", "bind 0xc000000c 0x50000"),
                    java.util.Set.copyOf(ctx.bindCalls), "its own vectors and peer 5's");
            ctx.bindCalls.clear();
            peers.addPeer(7, 2);
            assertEquals(List.of("bind 0xc000000c 0x70000", "bind 0xc000000c 0x70001"), ctx.bindCalls);
            ctx.bindCalls.clear();
            peers.leave(7);
            assertEquals(java.util.Set.of("unbind 0xc000000c 0x70000", "unbind 0xc000000c 0x70001"),
                    java.util.Set.copyOf(ctx.bindCalls), "before its eventfds close");
            ctx.bindCalls.clear();
            d.barPlaced(0, OptionalLong.of(0xc100_0000L));
            assertEquals(3, ctx.bindCalls.stream().filter(c -> c.startsWith("unbind 0xc000000c")).count());
            assertEquals(3, ctx.bindCalls.stream().filter(c -> c.startsWith("bind 0xc100000c")).count(), "moved with BAR0");
            ctx.bindCalls.clear();
        }
        assertEquals(3, ctx.bindCalls.stream().filter(c -> c.startsWith("unbind 0xc100000c")).count(), "close unbinds");
        assertEquals(List.of(), ctx.fatals);
    }

    @Test
    void ownEventFdRaisesItsVectorAndQuiesceHoldsItBack() throws Exception {
        try (IvshmemDevice d = IvshmemDevice.doorbell(ctx, memory, peers, 2, msix())) {
            peers.own.get(1).signal();
            assertEquals(1, raised.poll(5, TimeUnit.SECONDS));
            peers.own.get(0).signal();
            assertEquals(0, raised.poll(5, TimeUnit.SECONDS));

            d.quiesce();
            peers.own.get(1).signal();
            assertEquals(null, raised.poll(200, TimeUnit.MILLISECONDS), "nothing raised while quiesced");
            d.resume();
            assertEquals(1, raised.poll(5, TimeUnit.SECONDS), "raised on resume");

            // ringing oneself works as in QEMU
            d.writeBar(0, DOORBELL, 4, 3 << 16);
            assertEquals(0, raised.poll(5, TimeUnit.SECONDS));
        }
        assertEquals(List.of(), ctx.threads.alive(), "close joined the thread");
        assertTrue(raised.isEmpty());
    }

    @Test
    void ownEventFdWithIntxSetsStatusBitZero() throws Exception {
        try (IvshmemDevice d = IvshmemDevice.doorbell(ctx, memory, peers, 2, null)) {
            d.writeBar(0, INTRMASK, 4, 1);
            peers.own.get(1).signal();
            assertTrue(ctx.irq.awaitLevel(true, 5000));
            assertEquals(1, reg(d, INTRSTATUS));
            assertFalse(ctx.irq.level());
        }
    }

    @Test
    void closeStopsPromptlyAndLeaksNoFd() {
        int before = IvshmemFakes.openFds();
        for (int i = 0; i < 10; i++) {
            long start = System.nanoTime();
            IvshmemDevice d = IvshmemDevice.doorbell(ctx, memory, peers, 2, msix());
            d.quiesce(); // a quiesced device closes too
            d.close();
            assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(2), "close is prompt");
        }
        assertEquals(List.of(), ctx.threads.alive());
        assertEquals(before, IvshmemFakes.openFds());
        assertTrue(peers.listeners.isEmpty(), "the watch was closed");
    }

    @Test
    void memoryBarMapsMovesAndCloses() {
        try (IvshmemDevice d = IvshmemDevice.plain(ctx, memory)) {
            d.barPlaced(0, OptionalLong.of(0xfe00_0000L));
            assertEquals(List.of(), ctx.slotCalls);
            d.barPlaced(2, OptionalLong.of(0x8000_0000L));
            d.barPlaced(2, OptionalLong.of(0x9000_0000L));
            d.barPlaced(2, OptionalLong.empty());
            d.barPlaced(2, OptionalLong.empty());
            d.barPlaced(2, OptionalLong.of(0xa000_0000L));
            assertEquals(List.of("map 0x80000000 1048576 rw", "move 0x90000000", "close 0x90000000",
                    "map 0xa0000000 1048576 rw"), ctx.slotCalls);
        }
        assertEquals("close 0xa0000000", ctx.slotCalls.getLast(), "close() removes the slot");
    }

    @Test
    void doorbellsRaceWithPeersComingAndGoing() throws Exception {
        List<EventFd> five = peers.addPeer(5, 1);
        try (IvshmemDevice d = IvshmemDevice.doorbell(ctx, memory, peers, 2, msix())) {
            int rings = 2000;
            List<Throwable> failures = new CopyOnWriteArrayList<>();
            Thread vcpu = new Thread(() -> {
                try {
                    for (int i = 0; i < rings; i++) {
                        d.writeBar(0, DOORBELL, 4, 5 << 16);
                        d.writeBar(0, DOORBELL, 4, 7 << 16);
                    }
                } catch (Throwable t) {
                    failures.add(t);
                }
            });
            vcpu.start();
            for (int i = 0; i < 500 && vcpu.isAlive(); i++) {
                peers.addPeer(7, 1);
                peers.leave(7);
            }
            vcpu.join(10_000);
            assertFalse(vcpu.isAlive());
            assertEquals(List.of(), failures);
            assertEquals(rings, five.get(0).read(), "every doorbell to the peer that stayed arrived once");
        }
    }

    @Test
    void vectorsAreChecked() {
        assertThrows(IllegalArgumentException.class, () -> IvshmemDevice.doorbell(ctx, memory, peers, 0, null));
        assertThrows(IllegalArgumentException.class, () -> IvshmemDevice.doorbell(ctx, memory, peers, 65, null));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> IvshmemDevice.doorbell(ctx, memory, peers, 3, null));
        assertTrue(e.getMessage().contains("2 eventfds for 3 vectors"), e.getMessage());
    }
}
