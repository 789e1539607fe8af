package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.boot.DirectBoot;
import dev.kindling.boot.LinuxBoot;
import dev.kindling.boot.MicrovmLayout;
import dev.kindling.boot.MpTable;
import dev.kindling.boot.SetupHeader;
import dev.kindling.device.Device;
import dev.kindling.devices.vfio.InProcessPlatformDevice;
import dev.kindling.devices.vfio.PlatformDeviceBackend.Region;
import dev.kindling.devices.vfio.VfioPlatformDevice;
import dev.kindling.devices.vfio.VfioPlatformOptions;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.StopReason;
import dev.kindling.memory.GuestMemory;
import dev.kindling.testing.Dtc;
import dev.kindling.testing.HostResources;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A VFIO-platform device end to end: the {@code vfioplat} guest drives {@link InProcessPlatformDevice}
 * through real KVM, as a driver would drive a passed-through device: a mapped region, a trapped one,
 * and a level-triggered interrupt it acknowledges, on each interrupt path and irqchip.
 */
@Timeout(300)
class MicrovmVfioPlatformTest {
    private static final long BASE = 0xc000_0000L;
    private static final int GSI = 10;
    private static final Duration WAIT = Duration.ofSeconds(120);

    /** Port 0x610: the guest's reports, in order; 0x614: the mode it reads (1: end with an interrupt never acknowledged). */
    private static final class Reports implements Device {
        private final List<Long> values = new ArrayList<>();
        private final int mode;
        final CompletableFuture<Void> stalled = new CompletableFuture<>();

        Reports(int mode) {
            this.mode = mode;
        }

        public String name() {
            return "vfioplat-reports";
        }

        public long read(long offset, int size) {
            return offset == 4 ? mode : 0;
        }

        public synchronized void write(long offset, int size, long value) {
            if (offset == 0) {
                values.add(value);
                if (value == 0x57a11edL) {
                    stalled.complete(null);
                }
            }
        }

        synchronized List<Long> values() {
            return List.copyOf(values);
        }
    }

    private static MicrovmBuilder builder(IrqchipMode mode, InProcessPlatformDevice device, VfioPlatformOptions options,
                                          Reports reports) {
        // the freestanding guest knows the device's place: no device tree, so it boots through PVH
        return Microvm.builder().name("vfioplat").memoryMib(64).irqchip(mode).kernel(TestGuests.elf("vfioplat"))
                .deviceTree(OnOffAuto.OFF).vfioPlatform("in-process device", () -> device, BASE, GSI, options)
                .device(DeviceSpec.pio(0x610, 8, () -> reports));
    }

    @BeforeAll
    static void warmUp() {
        TestGuests.assumeKvm();
        cycle(IrqchipMode.SPLIT); // the first machine opens what the JVM keeps (random sources): not a leak
    }

    private static final List<Long> EXPECTED = List.of((long) InProcessPlatformDevice.ID, 0x11223344L, 3L, 3L, 0x11223344L);

    private static VfioPlatformDevice device(Microvm vm) {
        return (VfioPlatformDevice) vm.machine().mmio().find(BASE).device();
    }

    @ParameterizedTest
    @EnumSource(IrqchipMode.class)
    void aMappedRegionATrappedOneAndALevelInterruptTheGuestAcknowledges(IrqchipMode mode) throws Exception {
        TestGuests.assumeKvm();
        HostResources before = HostResources.now();
        InProcessPlatformDevice device = new InProcessPlatformDevice();
        Reports reports = new Reports(0);
        try (Microvm vm = builder(mode, device, VfioPlatformOptions.defaults(), reports).build()) {
            VfioPlatformDevice model = device(vm);
            assertThat(model.path(0)).isEqualTo(mode == IrqchipMode.KERNEL ? VfioPlatformDevice.Path.KERNEL
                    : VfioPlatformDevice.Path.EOI);
            assertThat(device.unmaskEventFdSet()).as("resample into VFIO's unmask").isEqualTo(mode == IrqchipMode.KERNEL);
            vm.start();
            assertThat(vm.awaitExit(WAIT)).contains(new StopReason.Reset(StopReason.ResetCause.I8042));
            assertThat(reports.values()).containsExactlyElementsOf(EXPECTED);
            assertThat(device.trappedRegion0()).as("region 0 is mapped: the guest's accesses never reached the backend").isZero();
            assertThat(device.memory().get(java.lang.foreign.ValueLayout.JAVA_INT, 0x100)).isEqualTo(0x11223344);
            assertThat(device.fired()).isGreaterThanOrEqualTo(3);
            assertThat(device.dma()).as("guest RAM offered for DMA at its guest addresses")
                    .anySatisfy(m -> assertThat(m[0]).isZero());
            assertThat(vm.deviceErrors()).isEmpty();
        }
        assertThat(device.closed()).isTrue();
        assertThat(device.resets()).as("reset on close").isGreaterThanOrEqualTo(1);
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void noMmapTrapsEveryAccess() throws Exception {
        TestGuests.assumeKvm();
        InProcessPlatformDevice device = new InProcessPlatformDevice();
        Reports reports = new Reports(0);
        try (Microvm vm = builder(IrqchipMode.SPLIT, device, VfioPlatformOptions.defaults().withNoMmap(true), reports).build()) {
            assertThat(device(vm).mapped()).isFalse();
            vm.start();
            assertThat(vm.awaitExit(WAIT)).contains(new StopReason.Reset(StopReason.ResetCause.I8042));
            assertThat(reports.values()).containsExactlyElementsOf(EXPECTED);
            assertThat(device.trappedRegion0()).as("write, read back, and one read per interrupt").isGreaterThanOrEqualTo(5);
        }
    }

    @ParameterizedTest
    @EnumSource(IrqchipMode.class)
    void theSlowPathTrapsTheAcknowledgementAndMapsAgainAfterTheTimeout(IrqchipMode mode) throws Exception {
        TestGuests.assumeKvm();
        InProcessPlatformDevice device = new InProcessPlatformDevice();
        Reports reports = new Reports(0);
        VfioPlatformOptions slow = VfioPlatformOptions.defaults().withIrqfd(false).withMmapTimeout(Duration.ofMillis(200));
        try (Microvm vm = builder(mode, device, slow, reports).build()) {
            VfioPlatformDevice model = device(vm);
            assertThat(model.path(0)).isEqualTo(VfioPlatformDevice.Path.SLOW);
            assertThat(model.mapped()).isTrue();
            vm.start();
            assertThat(vm.awaitExit(WAIT)).contains(new StopReason.Reset(StopReason.ResetCause.I8042));
            assertThat(reports.values()).containsExactlyElementsOf(EXPECTED);
            assertThat(device.trappedRegion0()).as("the handler's region-0 reads trapped while mappings were off")
                    .isGreaterThanOrEqualTo(3);
            // The heuristic's early unmask (at the handler's STATUS read) can leave one spurious interrupt
            // raised as the guest leaves, late if the relay thread runs late; accesses, as the guest's
            // next handler would make, end it. An access with nothing pending leaves the remap's time alone.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (!model.mapped() && System.nanoTime() < deadline) {
                model.read(0x1000, 4);
                Thread.sleep(50);
            }
            assertThat(model.mapped()).as("mapped again mmap-timeout-ms after the last interrupt").isTrue();
        }
    }

    @ParameterizedTest
    @EnumSource(IrqchipMode.class)
    void aGuestThatNeverAcknowledgesLeavesTheHostHealthy(IrqchipMode mode) throws Exception {
        TestGuests.assumeKvm();
        HostResources before = HostResources.now();
        InProcessPlatformDevice device = new InProcessPlatformDevice();
        Reports reports = new Reports(1);
        try (Microvm vm = builder(mode, device, VfioPlatformOptions.defaults(), reports).build()) {
            vm.start();
            reports.stalled.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            Thread.sleep(200);
            assertThat(vm.awaitExit(Duration.ofMillis(300))).as("the guest idles with its interrupt in service").isEmpty();
            assertThat(device(vm).trappedAccesses()).isPositive();
        }
        assertThat(device.closed()).isTrue();
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aDeviceTooLargeForTheHoleOrMisplacedIsRefusedAtBuildAndClosed() {
        TestGuests.assumeKvm();
        HostResources before = HostResources.now();
        InProcessPlatformDevice device = new InProcessPlatformDevice();
        assertThatThrownBy(() -> builder(IrqchipMode.SPLIT, device, VfioPlatformOptions.defaults(), new Reports(0))
                .vfioPlatform("huge", () -> new Huge(), 0xf000_0000L, 12, VfioPlatformOptions.defaults()).build())
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("huge: its regions take 0x40000000 bytes from 0xf0000000, which does not fit the MMIO hole");
        assertThat(device.closed()).as("the first device's backend, opened before the second failed").isTrue();
        InProcessPlatformDevice misplaced = new InProcessPlatformDevice();
        assertThatThrownBy(() -> Microvm.builder().memoryMib(64).kernel(TestGuests.elf("vfioplat")).deviceTree(OnOffAuto.OFF)
                .vfioPlatform("misplaced", () -> misplaced, BASE + 0x800, GSI, VfioPlatformOptions.defaults()).build())
                .isInstanceOf(ConfigException.class).hasMessageContaining("is not page-aligned");
        assertThat(misplaced.closed()).isTrue();
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void theDeviceTreeDescribesTheDeviceAndTheLinuxEntryCarriesIt() throws Exception {
        TestGuests.assumeKvm();
        InProcessPlatformDevice device = new InProcessPlatformDevice();
        VfioPlatformOptions named = VfioPlatformOptions.defaults().withCompatible("kindling,in-process", "generic");
        try (Microvm vm = Microvm.builder().memoryMib(64).kernel(TestGuests.elf("vfioplat"))
                .vfioPlatform("in-process device", () -> device, BASE, GSI, named).build()) {
            assertThat(vm.bootProtocol()).as("PVH has no place for a device tree").isEqualTo(DirectBoot.Protocol.LINUX_64);
            GuestMemory m = vm.machine().memory();
            long at = m.read64(MicrovmLayout.ZERO_PAGE_START + SetupHeader.SETUP_DATA);
            assertThat(at).isEqualTo(MicrovmLayout.SETUP_DATA_START);
            assertThat(m.read32(at + 8)).isEqualTo(LinuxBoot.SETUP_DTB);
            String dts = Dtc.decompile(m.read(at + LinuxBoot.SETUP_DATA_HEADER_SIZE, m.read32(at + 12)));
            assertThat(dts).contains("""
                    	in-process@c0000000 {
                    		compatible = "kindling,in-process\\0generic";
                    		reg = <0x00 0xc0000000 0x00 0x1000 0x00 0xc0001000 0x00 0x1000>;
                    		interrupt-parent = <0x01>;
                    		interrupts = <0x0a 0x01>;
                    	};
                    """);
            assertThat(mpInterruptFlags(m, GSI)).as("the MP table's entry: level, active high, not ISA's edge")
                    .isEqualTo(MpTable.FLAGS_LEVEL_HIGH);
        }
        assertThat(device.closed()).isTrue();
    }

    /** The flags of the MP table's I/O interrupt entry for IOAPIC pin {@code pin}. */
    private static int mpInterruptFlags(GuestMemory m, int pin) {
        long table = m.read32(MicrovmLayout.MPTABLE_START + 4) & 0xffffffffL;
        int count = m.read16(table + 34) & 0xffff;
        long p = table + MpTable.HEADER_SIZE;
        for (int i = 0; i < count; i++) {
            int type = m.read8(p) & 0xff;
            if (type == MpTable.TYPE_IO_INTERRUPT && (m.read8(p + 7) & 0xff) == pin) {
                return m.read16(p + 2) & 0xffff;
            }
            p += type == MpTable.TYPE_PROCESSOR ? MpTable.PROCESSOR_ENTRY_SIZE : MpTable.ENTRY_SIZE;
        }
        throw new AssertionError("no MP table entry for pin " + pin);
    }

    @Test
    void aDeviceTheDeviceTreeCannotNameIsRefusedUnlessTheTreeIsOff() {
        TestGuests.assumeKvm();
        InProcessPlatformDevice device = new InProcessPlatformDevice();
        assertThatThrownBy(() -> Microvm.builder().memoryMib(64).kernel(TestGuests.elf("vfioplat"))
                .vfioPlatform("nameless", () -> device, BASE, GSI, VfioPlatformOptions.defaults()).build())
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("nameless has no compatible for the guest's device tree")
                .hasMessageContaining("withCompatible");
        assertThat(device.closed()).isTrue();
        InProcessPlatformDevice off = new InProcessPlatformDevice();
        try (Microvm vm = Microvm.builder().memoryMib(64).kernel(TestGuests.elf("vfioplat")).deviceTree(OnOffAuto.OFF)
                .vfioPlatform("nameless", () -> off, BASE, GSI, VfioPlatformOptions.defaults()).build()) {
            assertThat(vm.bootProtocol()).isEqualTo(DirectBoot.Protocol.PVH);
        }
    }

    @Test
    void twoHundredCreateCloseCyclesLeaveNothingBehind() {
        TestGuests.assumeKvm();
        for (int i = 0; i < 3; i++) { // warm-up: lazily created JVM threads and caches are not leaks
            cycle(i % 2 == 0 ? IrqchipMode.SPLIT : IrqchipMode.KERNEL);
        }
        HostResources before = HostResources.now();
        for (int i = 0; i < 200; i++) {
            cycle(i % 2 == 0 ? IrqchipMode.SPLIT : IrqchipMode.KERNEL);
        }
        // a leak per cycle (the device's page, a slot, a run page) stays far outside the JVM's own
        // growth over 200 machines' threads (a malloc arena per new thread, code cache)
        HostResources.now().assertNothingLeftSince(before, 32);
    }

    private static void cycle(IrqchipMode mode) {
        InProcessPlatformDevice device = new InProcessPlatformDevice();
        try (Microvm vm = builder(mode, device, VfioPlatformOptions.defaults(), new Reports(0)).build()) {
            assertThat(device(vm).mapped()).isTrue();
        }
        assertThat(device.closed()).isTrue();
    }

    /** A backend with one region of 1 GiB. */
    private static final class Huge extends InProcessPlatformDevice {
        @Override
        public List<Region> regions() {
            return List.of(new Region(0, 1L << 30, true, true, false));
        }
    }
}
