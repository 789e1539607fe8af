package dev.kindling.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.boot.BootCpuState;
import dev.kindling.bus.AddressSpace;
import dev.kindling.bus.Bus;
import dev.kindling.device.Device;
import dev.kindling.device.DeviceContext;
import dev.kindling.device.IoEvent;
import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.irq.MsiVector;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.GuestMemoryClosedException;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.memory.MemorySlot;
import dev.kindling.testing.FakeIoEvent;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;

/**
 * The machine's side of devices, on a platform without a hypervisor: the device context, pause and
 * resume reaching device threads, and a close that unmaps guest memory only once no device thread can
 * touch it.
 */
class MachineDevicesTest {
    private static final long COUNTER = 0x1000;

    /** What happened, in order, across the platform and the devices. */
    private final List<String> events = new CopyOnWriteArrayList<>();

    private Machine machine(int vcpus) {
        GuestMemory memory = new GuestMemory(List.of(MemoryRegion.anonymous(0, 0x10000)));
        return new Machine("vm", new TestPlatform(events), memory, vcpus, false);
    }

    private static TestPlatform platformOf(Machine m) {
        return (TestPlatform) m.platform();
    }

    private static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!condition.getAsBoolean()) {
            assertThat(System.nanoTime()).as("waiting for " + what).isLessThan(deadline);
            Thread.sleep(1);
        }
    }

    @Test
    void aDeviceContextHandsOutTheMachinesPieces() throws Exception {
        IrqLine line = new TestLine(5);
        InterruptService interrupts = new TestInterrupts();
        Machine m = machine(1);
        DeviceContext ctx = m.deviceContext("blk0", line, interrupts);
        assertThat(ctx.name()).isEqualTo("blk0");
        assertThat(ctx.memory()).isSameAs(m.memory());
        assertThat(ctx.irq()).isSameAs(line);
        assertThat(ctx.interrupts()).isSameAs(interrupts);

        Thread a = ctx.threads().newThread(() -> {});
        Thread b = ctx.threads().newThread(() -> {});
        assertThat(List.of(a.getName(), b.getName())).containsExactly("vm-blk0", "vm-blk0-1");
        assertThat(a.isDaemon() && b.isDaemon()).isTrue();

        IoEvent kept = ctx.ioEvent(AddressSpace.MMIO, 0xd0000050L, 4, OptionalLong.of(0));
        IoEvent dropped = ctx.ioEvent(AddressSpace.MMIO, 0xd0000050L, 4, OptionalLong.of(1));
        assertThat(kept.address()).isEqualTo(0xd0000050L);
        assertThat(kept.space()).isEqualTo(AddressSpace.MMIO);
        dropped.close();
        dropped.close();
        try (Arena arena = Arena.ofConfined()) {
            MemorySlot slot = ctx.mapMemory(0xe0000000L, arena.allocate(0x1000), true);
            assertThat(slot.readOnly()).isTrue();
            assertThat(slot.size()).isEqualTo(0x1000);
            assertThat(events).containsExactly(
                    "ioevent+ 0xd0000050=0", "ioevent+ 0xd0000050=1", "ioevent- 0xd0000050=1", "slot+ 0xe0000000");
            events.clear();
            m.close();
        }
        // what the device left registered is removed with the machine, before the platform closes, once each
        assertThat(events).containsExactly("slot- 0xe0000000", "ioevent- 0xd0000050=0", "platform closed");
        assertThatThrownBy(() -> ctx.ioEvent(AddressSpace.PIO, 0x60, 1, OptionalLong.empty()))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        assertThatThrownBy(() -> ctx.threads().newThread(() -> {})).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> m.deviceContext("late", line, interrupts)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void fatalDeviceErrorsAreKeptForTheHostProgram() {
        try (Machine m = machine(1)) {
            DeviceContext blk = m.deviceContext("blk0", new TestLine(5), new TestInterrupts());
            DeviceContext rng = m.deviceContext("rng0", new TestLine(6), new TestInterrupts());
            RuntimeException io = new RuntimeException("EIO");
            blk.reportFatal("read of sector 8 failed", io);
            blk.reportFatal("write of sector 9 failed", null);
            rng.reportFatal("entropy source gone", null);
            assertThat(m.deviceErrors()).containsExactly(
                    new DeviceError("blk0", "read of sector 8 failed", io),
                    new DeviceError("blk0", "write of sector 9 failed", null),
                    new DeviceError("rng0", "entropy source gone", null));
        }
    }

    @Test
    void pauseQuiescesDeviceThreadsAfterTheVcpusAndResumeRestartsThemFirst() throws Exception {
        Machine m = machine(2);
        Writer w = new Writer(m.deviceContext("writer", new TestLine(5), new TestInterrupts()), events, m);
        m.attachMmio(0xd0000000L, 0x200, w);
        m.start();
        await("the vCPUs to run", () -> platformOf(m).inRun.get() == 2);
        await("the device to write", () -> m.memory().read64(COUNTER) > 0);

        m.pause();
        assertThat(m.state()).isEqualTo(Machine.State.PAUSED);
        assertThat(events).containsExactly("quiesce with 0 vCPU(s) in the guest");
        long held = m.memory().read64(COUNTER);
        assertThat(w.thread.getState()).isIn(Thread.State.WAITING, Thread.State.TIMED_WAITING);
        assertThat(platformOf(m).inRun.get()).isZero();
        assertThat(m.memory().read64(COUNTER)).as("guest memory while paused").isEqualTo(held);

        m.resume();
        assertThat(events).containsExactly("quiesce with 0 vCPU(s) in the guest", "resume with 0 vCPU(s) in the guest");
        await("the device to write again", () -> m.memory().read64(COUNTER) > held);
        await("the vCPUs to run again", () -> platformOf(m).inRun.get() == 2);

        events.clear();
        m.close();
        assertThat(w.thread.isAlive()).isFalse();
        assertThat(w.failure.get()).as("the device thread ended by close, not by a refused access").isNull();
        assertThat(m.memory().isOpen()).isFalse();
        assertThat(events).containsExactly("device closed", "platform closed");
    }

    @Test
    void aPausedMachineClosesAndItsDevicesWithIt() throws Exception {
        Machine m = machine(1);
        Writer w = new Writer(m.deviceContext("writer", new TestLine(5), new TestInterrupts()), events, m);
        m.attachMmio(0xd0000000L, 0x200, w);
        m.start();
        await("the device to write", () -> m.memory().read64(COUNTER) > 0);
        m.pause();
        m.close();
        assertThat(w.thread.isAlive()).isFalse();
        assertThat(m.memory().isOpen()).isFalse();
        assertThat(m.state()).isEqualTo(Machine.State.CLOSED);
    }

    @Test
    void aDeviceWhoseCloseFailsLeavesGuestMemoryMapped() {
        Machine m = machine(1);
        m.attachMmio(0xd0000000L, 0x200, new TestDevice("broken") {
            @Override
            public void close() {
                throw new IllegalStateException("backend gone");
            }
        });
        assertThatThrownBy(m::close).isInstanceOf(IllegalStateException.class).hasStackTraceContaining("backend gone");
        assertThat(m.memory().isOpen()).isTrue();
        m.memory().write64(COUNTER, 1); // still mapped: a thread of that device may still be using it
        assertThat(events).contains("platform closed");
        m.memory().close();
    }

    @Test
    void aDeviceWhoseCloseHangsIsGivenUpOnAndLeavesGuestMemoryMapped() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        Machine m = machine(1);
        m.closeTimeout(Duration.ofMillis(200));
        m.attachMmio(0xd0000000L, 0x200, new TestDevice("stuck") {
            @Override
            public void close() {
                try {
                    release.await(10, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        });
        long start = System.nanoTime();
        assertThatThrownBy(m::close).isInstanceOf(IllegalStateException.class)
                .hasStackTraceContaining("device stuck did not close within 200 ms");
        assertThat(System.nanoTime() - start).isLessThan(TimeUnit.SECONDS.toNanos(5));
        assertThat(m.memory().isOpen()).isTrue();
        release.countDown();
        m.memory().close();
    }

    @Test
    void aDeviceThreadThatOutlivesItsDeviceKeepsGuestMemoryMapped() throws Exception {
        Machine m = machine(1);
        m.closeTimeout(Duration.ofMillis(200));
        DeviceContext ctx = m.deviceContext("leaky", new TestLine(5), new TestInterrupts());
        CountDownLatch stop = new CountDownLatch(1);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread t = ctx.threads().newThread(() -> {
            try {
                for (long i = 0; !stop.await(0, TimeUnit.MILLISECONDS) && i < 100_000_000; i++) {
                    ctx.memory().write64(COUNTER, i);
                }
            } catch (Throwable e) {
                failure.set(e);
            }
        });
        t.start();
        m.attachMmio(0xd0000000L, 0x200, new TestDevice("leaky")); // its close() forgets the thread
        assertThatThrownBy(m::close).isInstanceOf(IllegalStateException.class)
                .hasStackTraceContaining("device threads still running").hasStackTraceContaining("vm-leaky");
        assertThat(m.memory().isOpen()).isTrue();
        stop.countDown();
        t.join(10_000);
        assertThat(failure.get()).isNull();
        m.memory().close();
    }

    @Test
    void aThreadTheMachineDoesNotKnowGetsAnExceptionAfterCloseNotACrash() throws Exception {
        Machine m = machine(1);
        GuestMemory memory = m.memory();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        CountDownLatch writing = new CountDownLatch(1);
        Thread rogue = new Thread(() -> {
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                for (long i = 0; System.nanoTime() < deadline; i++) {
                    memory.write64(COUNTER, i);
                    writing.countDown();
                }
            } catch (Throwable e) {
                failure.set(e);
            }
        }, "rogue");
        rogue.start();
        assertThat(writing.await(10, TimeUnit.SECONDS)).isTrue();
        m.close();
        rogue.join(10_000);
        assertThat(rogue.isAlive()).isFalse();
        assertThat(failure.get()).isInstanceOf(GuestMemoryClosedException.class);
    }

    /**
     * A device with a thread of its own that counts in guest memory, as a virtio backend thread
     * touches rings: it stops touching memory while quiesced, and close() joins it.
     */
    private static final class Writer extends TestDevice {
        final Thread thread;
        final AtomicReference<Throwable> failure = new AtomicReference<>();
        private final List<String> events;
        private final Machine machine;
        private boolean quiesced, idle, stop;

        Writer(DeviceContext ctx, List<String> events, Machine machine) {
            super("writer");
            this.events = events;
            this.machine = machine;
            thread = ctx.threads().newThread(() -> run(ctx.memory()));
            thread.start();
        }

        private void run(GuestMemory memory) {
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                for (long n = 1; System.nanoTime() < deadline; n++) {
                    synchronized (this) {
                        while (quiesced && !stop) {
                            idle = true;
                            notifyAll();
                            wait(100);
                        }
                        idle = false;
                        if (stop) {
                            return;
                        }
                    }
                    memory.write64(COUNTER, n);
                }
            } catch (Throwable t) {
                failure.set(t);
            }
        }

        @Override
        public void quiesce() {
            events.add("quiesce with " + ((TestPlatform) machine.platform()).inRun.get() + " vCPU(s) in the guest");
            synchronized (this) {
                quiesced = true;
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                while (!idle && thread.isAlive() && System.nanoTime() < deadline) {
                    try {
                        wait(10);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return;
                    }
                }
            }
        }

        @Override
        public void resume() {
            events.add("resume with " + ((TestPlatform) machine.platform()).inRun.get() + " vCPU(s) in the guest");
            synchronized (this) {
                quiesced = false;
                notifyAll();
            }
        }

        @Override
        public void close() {
            synchronized (this) {
                stop = true;
                notifyAll();
            }
            try {
                thread.join(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            events.add("device closed");
        }
    }

    private static class TestDevice implements Device {
        private final String name;

        TestDevice(String name) {
            this.name = name;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public long read(long offset, int size) {
            return Device.ones(size);
        }

        @Override
        public void write(long offset, int size, long value) {}
    }

    private record TestLine(int gsi) implements IrqLine {
        @Override
        public void pulse() {}

        @Override
        public void set(boolean level) {}
    }

    private static final class TestInterrupts implements InterruptService {
        @Override
        public IrqLine line(int gsi) {
            return new TestLine(gsi);
        }

        @Override
        public MsiVector msiVector() {
            throw new UnsupportedOperationException("no MSI in this test");
        }

        @Override
        public AutoCloseable onEndOfInterrupt(int gsi, Runnable listener) {
            throw new UnsupportedOperationException("no end-of-interrupt notices in this test");
        }
    }

    /**
     * A platform without a hypervisor: its vCPUs sit in run() until kicked, as in KVM_RUN, and it
     * records registrations and its close.
     */
    private static final class TestPlatform implements Platform {
        final AtomicInteger inRun = new AtomicInteger();
        private final List<String> events;

        TestPlatform(List<String> events) {
            this.events = events;
        }

        @Override
        public void addMemory(MemoryRegion region) {}

        @Override
        public InterruptService interrupts() {
            return new TestInterrupts();
        }

        @Override
        public VirtualCpu createVcpu(int index, int count, Bus pio, Bus mmio, boolean strictMmio) {
            return new VirtualCpu() {
                private boolean kicked;

                @Override
                public int index() {
                    return index;
                }

                @Override
                public void setBootState(BootCpuState state) {}

                @Override
                public VcpuEvent run() {
                    inRun.incrementAndGet();
                    try {
                        synchronized (this) {
                            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
                            while (!kicked && System.nanoTime() < deadline) {
                                wait(100);
                            }
                            kicked = false;
                        }
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    } finally {
                        inRun.decrementAndGet();
                    }
                    return VcpuEvent.KICKED;
                }

                @Override
                public synchronized void kick() {
                    kicked = true;
                    notifyAll();
                }

                @Override
                public void close() {}
            };
        }

        @Override
        public IrqLine irqLine(int gsi) {
            return new TestLine(gsi);
        }

        @Override
        public IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch) {
            String key = "0x" + Long.toHexString(address) + "=" + datamatch.orElse(-1);
            events.add("ioevent+ " + key);
            return new FakeIoEvent(space, address, length, datamatch, () -> events.add("ioevent- " + key));
        }

        @Override
        public MemorySlot mapMemory(long guestAddress, MemorySegment host, boolean readOnly) {
            events.add("slot+ 0x" + Long.toHexString(guestAddress));
            return new MemorySlot() {
                private long at = guestAddress;

                @Override
                public long guestAddress() {
                    return at;
                }

                @Override
                public long size() {
                    return host.byteSize();
                }

                @Override
                public boolean readOnly() {
                    return readOnly;
                }

                @Override
                public void move(long to) {
                    at = to;
                }

                @Override
                public void close() {
                    events.add("slot- 0x" + Long.toHexString(at));
                }
            };
        }

        @Override
        public int maxVcpus() {
            return 4;
        }

        @Override
        public void close() {
            events.add("platform closed");
        }
    }
}
