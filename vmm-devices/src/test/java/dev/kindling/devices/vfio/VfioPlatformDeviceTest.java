package dev.kindling.devices.vfio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.bus.AddressSpace;
import dev.kindling.device.DeviceContext;
import dev.kindling.device.IoEvent;
import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.memory.MemorySlot;
import dev.kindling.testing.FakePlatform;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadFactory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The device model without a VM: its window, its trapped accesses and its interrupt paths, driven by the test. */
class VfioPlatformDeviceTest {
    private static final long BASE = 0xc000_0000L;
    private static final int GSI = 10;
    private final Context context = new Context();

    /** A machine for one device: RAM, recording interrupts (a split irqchip: no irqfds) and recorded slots. */
    private static final class Context implements DeviceContext {
        final GuestMemory memory = new GuestMemory(List.of(MemoryRegion.anonymous(0, 1 << 20)));
        final FakePlatform.FakeInterrupts interrupts = new FakePlatform.FakeInterrupts();
        final List<Long> slots = new CopyOnWriteArrayList<>();
        final List<String> fatals = new CopyOnWriteArrayList<>();

        public String name() {
            return "vfio0";
        }

        public GuestMemory memory() {
            return memory;
        }

        public IrqLine irq() {
            return interrupts.line(GSI);
        }

        public InterruptService interrupts() {
            return interrupts;
        }

        public IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch) {
            throw new UnsupportedOperationException();
        }

        public MemorySlot mapMemory(long guestAddress, MemorySegment host, boolean readOnly) {
            slots.add(guestAddress);
            return new MemorySlot() {
                public long guestAddress() {
                    return guestAddress;
                }

                public long size() {
                    return host.byteSize();
                }

                public boolean readOnly() {
                    return readOnly;
                }

                public void move(long to) {
                    throw new UnsupportedOperationException();
                }

                public void close() {
                    slots.remove(guestAddress);
                }
            };
        }

        public ThreadFactory threads() {
            return r -> {
                Thread t = new Thread(r, "vfio0-relay");
                t.setDaemon(true);
                return t;
            };
        }

        public void reportFatal(String what, Throwable cause) {
            fatals.add(what);
        }
    }

    @AfterEach
    void closeMemory() {
        context.memory.close();
    }

    private static void await(java.util.function.BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(5);
        }
    }

    @Test
    void regionsArePagedOneAfterAnotherAndTrappedOnesReachTheBackend() {
        InProcessPlatformDevice backend = new InProcessPlatformDevice();
        try (VfioPlatformDevice d = VfioPlatformDevice.create(context, BASE, GSI, backend, VfioPlatformOptions.defaults())) {
            assertThat(d.windowSize()).isEqualTo(0x2000);
            assertThat(context.slots).as("region 0 mapped at the window's start").containsExactly(BASE);
            assertThat(d.read(0x1000, 4)).isEqualTo(InProcessPlatformDevice.ID);
            assertThat(d.read(0x1ffe, 4)).as("an access running past its region").isEqualTo(0xffff_ffffL);
            assertThat(d.read(0x5000, 4)).isEqualTo(0xffff_ffffL);
            assertThat(backend.dma()).singleElement().satisfies(m -> assertThat(m).containsExactly(0, 1 << 20));
        }
        assertThat(context.slots).isEmpty();
        assertThat(backend.closed()).isTrue();
        assertThat(backend.resets()).isEqualTo(1);
    }

    @Test
    void onASplitIrqchipALevelInterruptIsRelayedAndEndedByTheEndOfInterruptNotice() throws Exception {
        InProcessPlatformDevice backend = new InProcessPlatformDevice();
        try (VfioPlatformDevice d = VfioPlatformDevice.create(context, BASE, GSI, backend, VfioPlatformOptions.defaults())) {
            assertThat(d.path(0)).isEqualTo(VfioPlatformDevice.Path.EOI);
            d.write(0x1000 + InProcessPlatformDevice.RAISE, 4, 2);
            await(() -> context.interrupts.events(GSI).equals(List.of("high")), "the line raised");
            d.write(0x1000 + InProcessPlatformDevice.ACK, 4, 1); // the device asserts its second at once, masked
            context.interrupts.endOfInterrupt(GSI); // lowers, unmasks: the second fires
            await(() -> context.interrupts.events(GSI).equals(List.of("high", "low", "high")), "the second interrupt");
            d.write(0x1000 + InProcessPlatformDevice.ACK, 4, 1);
            context.interrupts.endOfInterrupt(GSI);
            assertThat(context.interrupts.events(GSI)).containsExactly("high", "low", "high", "low");
            assertThat(backend.fired()).isEqualTo(2);
            assertThat(context.fatals).isEmpty();
        }
    }

    @Test
    void theSlowPathUnmapsWhilePendingAndMapsAgainAfterTheTimeout() throws Exception {
        InProcessPlatformDevice backend = new InProcessPlatformDevice();
        VfioPlatformOptions slow = VfioPlatformOptions.defaults().withIrqfd(false).withMmapTimeout(Duration.ofMillis(100));
        try (VfioPlatformDevice d = VfioPlatformDevice.create(context, BASE, GSI, backend, slow)) {
            assertThat(d.path(0)).isEqualTo(VfioPlatformDevice.Path.SLOW);
            d.write(0x1000 + InProcessPlatformDevice.RAISE, 4, 1);
            await(() -> !d.mapped(), "the mappings off while the interrupt is pending");
            assertThat(context.slots).isEmpty();
            d.write(0x1000 + InProcessPlatformDevice.ACK, 4, 1); // the acknowledging access: after it, low and unmasked
            assertThat(context.interrupts.events(GSI)).containsExactly("high", "low");
            assertThat(d.mapped()).as("not before the timeout").isFalse();
            await(d::mapped, "mapped again");
            assertThat(context.slots).containsExactly(BASE);
        }
    }

    @Test
    void quiescedTheRelayRaisesNothingUntilResumed() throws Exception {
        InProcessPlatformDevice backend = new InProcessPlatformDevice();
        try (VfioPlatformDevice d = VfioPlatformDevice.create(context, BASE, GSI, backend, VfioPlatformOptions.defaults())) {
            d.quiesce();
            d.write(0x1000 + InProcessPlatformDevice.RAISE, 4, 1);
            Thread.sleep(100);
            assertThat(context.interrupts.events(GSI)).isEmpty();
            d.resume();
            await(() -> context.interrupts.events(GSI).equals(List.of("high")), "the held interrupt");
        }
    }

    @Test
    void aMisalignedAddressIsRefusedAndTheBackendClosed() {
        InProcessPlatformDevice backend = new InProcessPlatformDevice();
        assertThatThrownBy(() -> VfioPlatformDevice.create(context, BASE + 0x10, GSI, backend, VfioPlatformOptions.defaults()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not page-aligned");
        assertThat(backend.closed()).isTrue();
        assertThat(VfioPlatformDevice.layout(List.of(new PlatformDeviceBackend.Region(0, 0x100, true, true, true),
                new PlatformDeviceBackend.Region(1, 0x1001, true, true, false),
                new PlatformDeviceBackend.Region(2, 8, true, false, false)))).containsExactly(0, 0x1000, 0x3000);
    }
}
