package dev.kindling.kvm.platform;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.boot.BootCpuState;
import dev.kindling.boot.KernelLoader;
import dev.kindling.bus.AddressSpace;
import dev.kindling.device.Device;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.ExitDispatch;
import dev.kindling.machine.Machine;
import dev.kindling.machine.StopReason;
import dev.kindling.sys.EventFd;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.LongStream;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Freestanding guests on real KVM talking to Java devices: the whole exit path, end to end. */
@Timeout(120)
class MachineOnKvmTest {
    private static final Duration WAIT = Duration.ofSeconds(60);
    /** How long a paused machine is watched for writes it must not make. */
    private static final Duration PAUSE_WINDOW = Duration.ofMillis(300);
    /**
     * stop() kicks the vCPUs (and interrupts one a device holds after a second): it must return well
     * before the machine's 10 s join timeout, by a margin a loaded machine still keeps.
     */
    private static final Duration PROMPT_STOP = Duration.ofSeconds(8);

    private static StopReason run(Machine m) throws InterruptedException {
        m.start();
        return m.awaitExit(WAIT).orElseThrow(() -> new AssertionError(m.name() + " did not end within " + WAIT));
    }

    @Test
    void guestWritesToJavaPioAndMmioDevicesAndReadsValuesBack() throws Exception {
        try (Machine m = TestGuests.machine("hello")) {
            Recorder pio = new Recorder("pio-probe").answer(4, 0x12345678L);
            Recorder mmio = new Recorder("mmio-probe").answer(4, 0xcafef00dL).answer(8, 0x11111111L).answer(12, 0x22222222L);
            m.attachPio(0x600, 16, pio);
            m.attachMmio(0xd0000000L, 0x1000, mmio);
            assertThat(run(m)).isEqualTo(new StopReason.Reset(StopReason.ResetCause.I8042));
            assertThat(pio.text(0)).isEqualTo("Hello, PIO!");
            assertThat(mmio.text(0)).isEqualTo("Hello, MMIO!");
            assertThat(pio.values(8)).containsExactly(0x12345679L, 0xcafef00eL, 0x11111112L, 0x22222223L);
        }
    }

    @Test
    void javaDeviceRaisesAnInterruptThroughIrqfdAndTheGuestHandlerRuns() throws Exception {
        try (Machine m = TestGuests.machine("irq")) {
            var line = m.platform().irqLine(10);
            AtomicInteger raised = new AtomicInteger();
            Recorder dev = new Recorder("irq-source");
            Runnable raise = () -> {
                if (raised.incrementAndGet() <= 3) {
                    line.pulse();
                }
            };
            dev.onWrite(0, v -> raise.run()).onWrite(4, v -> raise.run());
            Recorder unexpected = new Recorder("unexpected-vector");
            m.attachPio(0x610, 8, dev);
            m.attachPio(0x6ff, 1, unexpected);
            assertThat(run(m)).isInstanceOf(StopReason.Reset.class);
            assertThat(unexpected.writes()).isEmpty();
            // the handler ran three times: it reports its count after each interrupt
            assertThat(dev.values(4)).containsExactly(1L, 2L, 3L);
        }
    }

    @Test
    void ioeventfdWritesReachJavaWithoutAnExit() throws Exception {
        try (Machine m = TestGuests.machine("ioevent")) {
            EventFd doorbell = m.platform().ioEvent(AddressSpace.PIO, 0x620, 2, OptionalLong.of(0x1234)).eventFd();
            Recorder bus = new Recorder("ioevent-port");
            Recorder done = new Recorder("done");
            m.attachPio(0x620, 2, bus);
            m.attachPio(0x624, 4, done);
            assertThat(run(m)).isInstanceOf(StopReason.Reset.class);
            assertThat(done.values(0)).containsExactly(100L);
            assertThat(bus.writes()).as("writes that exited to user space").isEmpty();
            assertThat(doorbell.read()).isEqualTo(100);
        }
    }

    @Test
    void twoVcpusRunAtOnceAndPauseAndResumeWork() throws Exception {
        try (Machine m = TestGuests.machine("smp", 2, TestGuests.KERNEL_IRQCHIP, false)) {
            // both vCPUs start at the guest's entry; the guest gives each its own stack
            m.vcpus().get(1).setBootState(bootStateOf(m));
            Recorder ids = new Recorder("ids");
            Recorder cpu0 = new Recorder("cpu0");
            Recorder cpu1 = new Recorder("cpu1");
            m.attachPio(0x630, 4, ids);
            m.attachPio(0x634, 4, cpu0);
            m.attachPio(0x638, 4, cpu1);
            m.start();
            awaitValues(cpu0, 3);
            awaitValues(cpu1, 3);
            assertThat(ids.values(0)).containsExactlyInAnyOrder(0L, 1L); // no 0xdead: the rendezvous met

            m.pause();
            assertThat(m.isPaused()).isTrue();
            int n0 = cpu0.writes().size(), n1 = cpu1.writes().size();
            // a running guest writes thousands of times in this window; a paused one never does
            assertThat(cpu0.awaitWrites(n0 + 1, PAUSE_WINDOW)).as("cpu0 wrote while paused").isFalse();
            assertThat(cpu1.awaitWrites(n1 + 1, Duration.ZERO)).as("cpu1 wrote while paused").isFalse();

            m.resume();
            awaitValues(cpu0, n0 + 3);
            awaitValues(cpu1, n1 + 3);
            // each vCPU carries on from where it stopped: nothing lost, nothing repeated
            for (Recorder cpu : List.of(cpu0, cpu1)) {
                List<Long> values = cpu.values(0);
                assertThat(values).as(cpu.name()).isEqualTo(LongStream.range(0, values.size()).boxed().toList());
            }
            long t0 = System.nanoTime();
            m.stop();
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(PROMPT_STOP);
            assertThat(m.awaitExit(Duration.ZERO)).contains(new StopReason.Stopped());
        }
    }

    private static BootCpuState bootStateOf(Machine m) throws Exception {
        byte[] image = Files.readAllBytes(TestGuests.elf("smp"));
        var kernel = KernelLoader.forImage(image).inspect(m.memory(), image);
        return BootCpuState.protectedMode32(kernel.pvhEntry().orElseThrow(), 0);
    }

    private static void awaitValues(Recorder r, int n) throws InterruptedException {
        if (!r.awaitWrites(n, WAIT)) {
            throw new AssertionError(r.name() + " saw only " + r.writes().size() + " writes in " + WAIT);
        }
    }

    @Test
    void exitStagesRunOutsideDeviceCallsAndMayCloseTheMachine() throws Exception {
        CountDownLatch closed = new CountDownLatch(1);
        List<String> deviceFrames = new ArrayList<>();
        List<Throwable> failures = new ArrayList<>();
        Machine m = TestGuests.machine("hello");
        m.onExit().thenRun(() -> {
            // the guest's reset request is a port write: no device's write() may be on the stack
            StackWalker.getInstance().forEach(f -> {
                if (f.getClassName().equals(ExitDispatch.class.getName()) || f.getClassName().endsWith("ResetPort")) {
                    deviceFrames.add(f.toString());
                }
            });
            try {
                m.close();
            } catch (Throwable t) {
                failures.add(t);
            }
            closed.countDown();
        });
        m.start();
        assertThat(closed.await(WAIT.toSeconds(), TimeUnit.SECONDS)).as("the stage closed the machine").isTrue();
        assertThat(deviceFrames).isEmpty();
        assertThat(failures).isEmpty();
        assertThat(m.state()).isEqualTo(Machine.State.CLOSED);
        assertThat(m.awaitExit(Duration.ZERO)).containsInstanceOf(StopReason.Reset.class);
    }

    @Test
    void readsFromAFailingDeviceReturnAllOnesAndEachDeviceIsLoggedOnce() throws Exception {
        Device pioBroken = new Broken("broken-pio");
        Device mmioBroken = new Broken("broken-mmio");
        Logger log = Logger.getLogger(ExitDispatch.class.getName());
        List<LogRecord> warnings = new ArrayList<>();
        Handler capture = new Handler() {
            @Override
            public void publish(LogRecord r) {
                if (r.getLevel() == Level.WARNING) {
                    synchronized (warnings) {
                        warnings.add(r);
                    }
                }
            }

            @Override
            public void flush() {}

            @Override
            public void close() {}
        };
        log.addHandler(capture);
        try (Machine m = TestGuests.machine("failread")) {
            Recorder report = new Recorder("report");
            m.attachPio(0x670, 4, pioBroken);
            m.attachPio(0x674, 4, report);
            m.attachMmio(0xd0002000L, 0x1000, mmioBroken);
            assertThat(run(m)).isInstanceOf(StopReason.Reset.class);
            // inl, inb, the four values of rep insl, the MMIO read: all ones, not what the run page held
            assertThat(report.values(0)).containsExactly(0xffffffffL, 0xffL,
                    0xffffffffL, 0xffffffffL, 0xffffffffL, 0xffffffffL, 0xffffffffL);
        } finally {
            log.removeHandler(capture);
        }
        synchronized (warnings) {
            assertThat(warnings).extracting(LogRecord::getMessage).containsExactlyInAnyOrder(
                    "device broken-pio failed (further failures are not logged)",
                    "device broken-mmio failed (further failures are not logged)");
        }
    }

    /** Accepts writes, fails every read. */
    private record Broken(String name) implements Device {
        public long read(long offset, int size) {
            throw new IllegalStateException(name + " is broken");
        }

        public void write(long offset, int size, long value) {}
    }

    @Test
    void guestTouchingUnmappedMemoryEndsWithAClearError() throws Exception {
        try (Machine m = TestGuests.machine("badmem")) {
            Recorder seen = new Recorder("value");
            m.attachPio(0x640, 4, seen);
            StopReason why = run(m);
            // the read of nothing returns all ones, as on a real bus; the jump there cannot execute
            assertThat(seen.values(0)).containsExactly(0xffffffffL);
            assertThat(why).isInstanceOf(StopReason.InternalError.class);
            assertThat(why.describe()).contains("emulation failed").contains("rip=0xe0001000");
        }
        try (Machine m = TestGuests.machine("badmem", 1, TestGuests.KERNEL_IRQCHIP, true)) {
            assertThat(run(m)).isEqualTo(new StopReason.BadAccess(0, 0xe0000000L, false));
        }
    }

    @Test
    void guestExecutingGarbageEndsWithATripleFault() throws Exception {
        for (String guest : new String[] {"garbage", "garbage2"}) {
            try (Machine m = TestGuests.machine(guest)) {
                assertThat(run(m)).as(guest).isEqualTo(new StopReason.TripleFault(0));
            }
        }
    }

    @Test
    void longModeGuestRuns() throws Exception {
        try (Machine m = TestGuests.machine("longmode")) {
            Recorder r = new Recorder("longmode");
            Recorder console = new Recorder("debugcon");
            m.attachPio(0x650, 8, r);
            m.attachPio(0xe9, 1, console);
            assertThat(run(m)).isInstanceOf(StopReason.Reset.class);
            assertThat(r.values(0)).containsExactly(4L);
            assertThat(r.values(4)).containsExactly(0x100L);
            assertThat(console.text(0)).isEqualTo("long mode\n");
        }
    }

    @Test
    void splitIrqchipMachineRunsAGuest() throws Exception {
        try (Machine m = TestGuests.machine("hello", 1, new KvmPlatform.Config(IrqchipMode.SPLIT, false), false)) {
            Recorder pio = new Recorder("pio-probe");
            m.attachPio(0x600, 16, pio);
            m.attachMmio(0xd0000000L, 0x1000, new Recorder("mmio-probe"));
            assertThat(run(m)).isInstanceOf(StopReason.Reset.class);
            assertThat(pio.text(0)).isEqualTo("Hello, PIO!");
        }
    }

    @Test
    void stopEndsAVcpuThatADeviceHoldsInAJavaWait() throws Exception {
        CountDownLatch held = new CountDownLatch(1);
        Device stuck = new Device() {
            public String name() {
                return "stuck-sink";
            }

            public long read(long offset, int size) {
                return offset == 0x10 ? 5 : 0; // exitloop's iteration count
            }

            public synchronized void write(long offset, int size, long value) {
                held.countDown();
                try {
                    while (true) {
                        wait(); // like a full output buffer whose reader never comes
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
        try (Machine m = TestGuests.machine("exitloop")) {
            m.attachPio(0x700, 0x14, stuck);
            m.start();
            assertThat(held.await(30, TimeUnit.SECONDS)).isTrue();
            long t0 = System.nanoTime();
            m.stop();
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(PROMPT_STOP);
            assertThat(m.awaitExit(Duration.ZERO)).contains(new StopReason.Stopped());
        }
    }
}
