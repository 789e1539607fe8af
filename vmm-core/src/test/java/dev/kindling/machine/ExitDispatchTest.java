package dev.kindling.machine;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.bus.AddressSpace;
import dev.kindling.device.Device;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.testing.FakePlatform;
import dev.kindling.testing.FakePlatform.Access;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Exit dispatch without a hypervisor: whole machines on {@link FakePlatform}, whose vCPUs replay scripts. */
@Timeout(30)
class ExitDispatchTest {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private static final Access EXIT = Access.out(0x64, 1, 0xfe);

    /** Records writes as "offset:size=value" and answers reads with {@code 0x100 + offset}. */
    private static final class Probe implements Device {
        private final String name;
        private final List<String> writes = new ArrayList<>();

        Probe(String name) {
            this.name = name;
        }

        public String name() {
            return name;
        }

        public long read(long offset, int size) {
            return 0x100 + offset;
        }

        public synchronized void write(long offset, int size, long value) {
            writes.add(offset + ":" + size + "=0x" + Long.toHexString(value));
        }

        synchronized List<String> writes() {
            return List.copyOf(writes);
        }
    }

    /** Fails every access. */
    private record Broken(String name) implements Device {
        public long read(long offset, int size) {
            throw new IllegalStateException(name + " is broken");
        }

        public void write(long offset, int size, long value) {
            throw new IllegalStateException(name + " is broken");
        }
    }

    /** 0xfe to port 0x64 ends the machine, as the test guests do. */
    private static Device resetPort(Machine m) {
        return new Device() {
            public String name() {
                return "reset-port";
            }

            public long read(long offset, int size) {
                return 0;
            }

            public void write(long offset, int size, long value) {
                if (value == 0xfe) {
                    m.requestExit(new StopReason.Reset(StopReason.ResetCause.I8042));
                }
            }
        };
    }

    private static Machine machine(FakePlatform p, int vcpus, boolean strict) {
        GuestMemory memory = new GuestMemory(List.of(MemoryRegion.anonymous(0, 1 << 20)));
        Machine m = new Machine("fake", p, memory, vcpus, strict);
        m.attachPio(0x64, 1, resetPort(m));
        return m;
    }

    private static StopReason run(Machine m) throws InterruptedException {
        m.start();
        return m.awaitExit(WAIT).orElseThrow(() -> new AssertionError("the machine did not end"));
    }

    @Test
    void portAndMmioAccessesReachTheirDevicesAtTheirOffsets() throws Exception {
        FakePlatform p = new FakePlatform();
        try (Machine m = machine(p, 1, false)) {
            Probe ports = new Probe("ports");
            Probe regs = new Probe("regs");
            m.attachPio(0x600, 16, ports);
            m.attachMmio(0xd0000000L, 0x1000, regs);
            p.vcpu(0).script(Access.out(0x604, 2, 0xbeef), Access.in(0x608, 4), Access.out(0x600, 1, 1, 2, 3),
                    Access.insString(0x60c, 1, 2), Access.in(0x700, 2), Access.mmioWrite(0xd0000010L, 4, 0x12345678),
                    Access.mmioRead(0xd0000020L, 8), Access.mmioRead(0xe0000000L, 4), Access.mmioWrite(0xe0000000L, 4, 1),
                    EXIT);
            assertThat(run(m)).isEqualTo(new StopReason.Reset(StopReason.ResetCause.I8042));
            assertThat(ports.writes()).containsExactly("4:2=0xbeef", "0:1=0x1", "0:1=0x2", "0:1=0x3");
            assertThat(regs.writes()).containsExactly("16:4=0x12345678");
            // 0x608, rep insb twice at 0x60c (one byte of 0x10c), an unclaimed port, MMIO 0x20, unclaimed MMIO
            assertThat(p.vcpu(0).reads()).containsExactly(0x108L, 0x0cL, 0x0cL, 0xffffL, 0x120L, 0xffffffffL);
        }
    }

    @Test
    void strictMmioStopsTheMachineAtTheFirstAccessToNothing() throws Exception {
        FakePlatform p = new FakePlatform();
        try (Machine m = machine(p, 1, true)) {
            Probe after = new Probe("after");
            m.attachPio(0x600, 1, after);
            p.vcpu(0).script(Access.in(0x700, 1), Access.mmioWrite(0xe0001000L, 4, 7), Access.out(0x600, 1, 1), EXIT);
            assertThat(run(m)).isEqualTo(new StopReason.BadAccess(0, 0xe0001000L, true));
            assertThat(after.writes()).as("nothing runs after the bad access").isEmpty();
            assertThat(p.vcpu(0).reads()).containsExactly(0xffL); // an unclaimed port is no bad access
        }
    }

    @Test
    void aThrowingDeviceReadsAllOnesDropsWritesAndIsLoggedOncePerMachine() throws Exception {
        Logger log = Logger.getLogger(ExitDispatch.class.getName());
        List<String> warnings = new ArrayList<>();
        Handler capture = new Handler() {
            @Override
            public void publish(LogRecord r) {
                if (r.getLevel() == Level.WARNING) {
                    synchronized (warnings) {
                        warnings.add(r.getMessage());
                    }
                }
            }

            @Override
            public void flush() {}

            @Override
            public void close() {}
        };
        log.addHandler(capture);
        FakePlatform p = new FakePlatform();
        try (Machine m = machine(p, 2, false)) {
            m.attachPio(0x670, 4, new Broken("broken-pio"));
            m.attachMmio(0xd0002000L, 0x1000, new Broken("broken-mmio"));
            Access[] abuse = {Access.out(0x670, 4, 0x12345678), Access.in(0x670, 4), Access.in(0x670, 1),
                    Access.insString(0x670, 2, 3), Access.mmioWrite(0xd0002000L, 4, 1), Access.mmioRead(0xd0002000L, 4)};
            Probe done = new Probe("done");
            m.attachPio(0x674, 1, done);
            p.vcpu(1).script(abuse).script(Access.out(0x674, 1, 1));
            p.vcpu(0).script(abuse);
            m.start();
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (done.writes().isEmpty() && System.nanoTime() < deadline) {
                Thread.onSpinWait();
            }
            p.vcpu(0).script(EXIT); // once vCPU 1 has been through it all
            assertThat(m.awaitExit(WAIT)).contains(new StopReason.Reset(StopReason.ResetCause.I8042));
            for (int cpu = 0; cpu < 2; cpu++) {
                assertThat(p.vcpu(cpu).reads()).as("vCPU " + cpu)
                        .containsExactly(0xffffffffL, 0xffL, 0xffffL, 0xffffL, 0xffffL, 0xffffffffL);
            }
        } finally {
            log.removeHandler(capture);
        }
        synchronized (warnings) {
            assertThat(warnings).containsExactlyInAnyOrder(
                    "device broken-pio failed (further failures are not logged)",
                    "device broken-mmio failed (further failures are not logged)");
        }
    }

    @Test
    void ioeventfdWritesDoNotReachTheBusUntilTheRegistrationIsRemoved() throws Exception {
        FakePlatform p = new FakePlatform();
        try (Machine m = machine(p, 1, false)) {
            Probe doorbell = new Probe("doorbell");
            m.attachMmio(0xd0000000L, 0x200, doorbell);
            var event = m.platform().ioEvent(AddressSpace.MMIO, 0xd0000050L, 4, OptionalLong.empty());
            p.vcpu(0).script(Access.mmioWrite(0xd0000050L, 4, 0), Access.mmioWrite(0xd0000050L, 4, 1));
            event.close();
            p.vcpu(0).script(Access.mmioWrite(0xd0000050L, 4, 2), EXIT);
            var again = m.platform().ioEvent(AddressSpace.MMIO, 0xd0000050L, 4, OptionalLong.empty());
            again.close();
            assertThat(run(m)).isInstanceOf(StopReason.Reset.class);
            assertThat(doorbell.writes()).containsExactly("80:4=0x0", "80:4=0x1", "80:4=0x2");
        }
    }
}
