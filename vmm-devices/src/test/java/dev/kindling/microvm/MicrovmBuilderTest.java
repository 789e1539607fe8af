package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.kindling.boot.BootException;
import dev.kindling.boot.MpTable;
import dev.kindling.bus.AddressSpace;
import dev.kindling.device.Device;
import dev.kindling.devices.virtio.blk.BlkOptions;
import dev.kindling.device.DeviceContext;
import dev.kindling.kvm.platform.IrqchipMode;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.irq.MsiVector;
import dev.kindling.machine.DeviceError;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.testing.HostResources;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Impossible configurations fail with their own clear error naming the setting, found without KVM
 * where they can be, and leave nothing behind.
 */
class MicrovmBuilderTest {
    @TempDir
    Path tmp;

    private MicrovmBuilder valid() {
        return Microvm.builder().memoryMib(64).kernel(TestGuests.elf("hello"));
    }

    /** A file that passes validate()'s format check (the ELF magic) without gcc or KVM. */
    private Path elfMagic() throws IOException {
        byte[] b = new byte[4096];
        b[0] = 0x7f;
        b[1] = 'E';
        b[2] = 'L';
        b[3] = 'F';
        return Files.write(tmp.resolve("magic.elf"), b);
    }

    private static ConfigException configError(MicrovmBuilder b, String field) {
        ConfigException e = catchThrowableOfType(ConfigException.class, b::validate);
        assertThat(e).as("validate() of a configuration wrong in " + field).isNotNull();
        assertThat(e.field()).as(e.getMessage()).isEqualTo(field);
        return e;
    }

    @Test
    void validateNeedsNoKvmAndNamesTheFieldAtFault() throws Exception {
        Path k = elfMagic();
        Microvm.builder().kernel(k).validate();
        // the host's memory and KVM's vCPU limit are the host's business, not validate()'s
        Microvm.builder().kernel(k).memoryMib(1L << 30).vcpus(MpTable.MAX_CPUS).validate();

        assertThat(configError(Microvm.builder(), "kernel")).hasMessageContaining("no kernel");
        assertThat(configError(Microvm.builder().kernel(tmp.resolve("nope")), "kernel"))
                .hasMessageContaining("nope").hasMessageContaining("does not exist");
        Path garbage = Files.write(tmp.resolve("garbage.bin"), new byte[4096]);
        assertThat(configError(Microvm.builder().kernel(garbage), "kernel"))
                .hasMessageContaining("garbage.bin").hasCauseInstanceOf(BootException.class);
        assertThat(configError(Microvm.builder().kernel(k).initrd(tmp.resolve("initrd-missing")), "initrd"))
                .hasMessageContaining("initrd-missing");
        Path empty = Files.write(tmp.resolve("empty-initrd"), new byte[0]);
        assertThat(configError(Microvm.builder().kernel(k).initrd(empty), "initrd")).hasMessageContaining("is empty");
        assertThat(configError(Microvm.builder().kernel(k).memoryMib(0), "memoryMib")).hasMessageContaining("at least 1 MiB");
        assertThat(configError(Microvm.builder().kernel(k).memoryMib(1), "memoryMib")).hasMessageContaining("not possible");
        assertThat(configError(Microvm.builder().kernel(k).vcpus(0), "vcpus")).hasMessageContaining("at least 1");
        assertThat(configError(Microvm.builder().kernel(k).vcpus(MpTable.MAX_CPUS + 1), "vcpus"))
                .hasMessageContaining("above the limit");
        assertThat(configError(Microvm.builder().kernel(k).irqchip(IrqchipMode.KERNEL).pic(OnOffAuto.OFF), "pic"))
                .hasMessageContaining("pic=off needs irqchip(SPLIT)");
        assertThat(configError(Microvm.builder().kernel(k).cmdline("console=ttyS0 caf\u00e9"), "cmdline"))
                .hasMessageContaining("non-ASCII");
        MicrovmBuilder nine = Microvm.builder().kernel(k);
        for (int i = 0; i < 9; i++) {
            nine.virtioMmioTransport(ctx -> new Probe());
        }
        assertThat(configError(nine, "virtioMmioTransport")).hasMessageContaining("8 transports");
    }

    @Test
    void irqConflictsNameBothClaimants() throws Exception {
        Path k = elfMagic();
        assertThat(configError(Microvm.builder().kernel(k).rtc(OnOffAuto.ON).device(DeviceSpec.pio(0x700, 4, 8, ctx -> new Probe())), "irq"))
                .hasMessage("IRQ 8 is wanted by both rtc and device at pio 0x700");
        MicrovmBuilder b = Microvm.builder().kernel(k).rtc(OnOffAuto.ON);
        for (int i = 0; i < 4; i++) {
            b.virtioMmioTransport(ctx -> new Probe());
        }
        assertThat(configError(b, "irq")).hasMessage("IRQ 8 is wanted by both rtc and virtio-mmio transport 3");
        assertThat(configError(Microvm.builder().kernel(k).device(DeviceSpec.mmio(0xe0000000L, 16, 24, ctx -> new Probe())), "irq"))
                .hasMessageContaining("wants IRQ 24");
    }

    @Test
    void deviceWindowsMustFitTheirBusAndOverlapNothing() throws Exception {
        Path k = elfMagic();
        assertThat(configError(Microvm.builder().kernel(k).device(DeviceSpec.pio(0x3f8, 1, Probe::new)), "device"))
                .hasMessageContaining("overlaps serial0");
        // without the serial port the window is free
        Microvm.builder().kernel(k).isaSerial(false).device(DeviceSpec.pio(0x3f8, 1, Probe::new)).validate();
        assertThat(configError(Microvm.builder().kernel(k).device(DeviceSpec.pio(0x700, 8, Probe::new))
                .device(DeviceSpec.pio(0x704, 1, Probe::new)), "device"))
                .hasMessage("device at pio 0x704 (0x1 bytes) overlaps device at pio 0x700 at 0x700");
        assertThat(configError(Microvm.builder().kernel(k).device(DeviceSpec.mmio(0xd0000100L, 16, Probe::new))
                .virtioMmioTransport(ctx -> new Probe()), "device")).hasMessageContaining("overlaps virtio-mmio transport 0");
        assertThat(configError(Microvm.builder().kernel(k).device(DeviceSpec.mmio(0xfee00800L, 4, Probe::new)), "device"))
                .hasMessageContaining("overlaps local-apic");
        assertThat(configError(Microvm.builder().kernel(k).memoryMib(64).device(DeviceSpec.mmio(0x100000, 4, Probe::new)), "device"))
                .hasMessageContaining("inside guest RAM");
        assertThat(configError(Microvm.builder().kernel(k).device(DeviceSpec.pio(0xfffe, 4, Probe::new)), "device"))
                .hasMessageContaining("does not fit the pio space");
        assertThat(configError(Microvm.builder().kernel(k).device(DeviceSpec.pio(0x700, 0, Probe::new)), "device"))
                .hasMessageContaining("does not fit");
        assertThat(configError(Microvm.builder().kernel(k).device(DeviceSpec.pio(0x700, 1, Probe::new).named("disk"))
                .device(DeviceSpec.pio(0x710, 1, Probe::new).named("disk")), "device"))
                .hasMessage("device at pio 0x710: another device is named disk");
        assertThat(configError(Microvm.builder().kernel(k).virtioMmioTransport(ctx -> new Probe())
                .device(DeviceSpec.pio(0x700, 1, Probe::new).named("virtio-mmio0")), "device"))
                .hasMessageContaining("another device is named virtio-mmio0");
    }

    @Test
    void devicesAreNamedAfterTheirWindowUnlessNamed() {
        assertThat(DeviceSpec.pio(0x700, 4, Probe::new).name()).isEqualTo("pio-0x700");
        assertThat(DeviceSpec.mmio(0xe0000000L, 16, 9, ctx -> new Probe()).name()).isEqualTo("mmio-0xe0000000");
        assertThat(DeviceSpec.pio(0x700, 4, Probe::new).named("ports").name()).isEqualTo("ports");
        assertThatThrownBy(() -> DeviceSpec.pio(0x700, 4, Probe::new).named(" ")).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void eachDeviceGetsItsOwnContext() throws Exception {
        TestGuests.assumeKvm();
        AtomicReference<DeviceContext> virtio0 = new AtomicReference<>();
        AtomicReference<DeviceContext> virtio1 = new AtomicReference<>();
        AtomicReference<DeviceContext> user = new AtomicReference<>();
        AtomicReference<DeviceContext> plain = new AtomicReference<>();
        try (Microvm vm = valid().name("ctxvm")
                .virtioMmioTransport(ctx -> keep(virtio0, ctx))
                .virtioMmioTransport(ctx -> keep(virtio1, ctx))
                .device(DeviceSpec.mmio(0xe0000000L, 16, 9, ctx -> keep(user, ctx)).named("probe0"))
                .device(new DeviceSpec(AddressSpace.PIO, 0x700, 4, OptionalInt.empty(), ctx -> keep(plain, ctx)))
                .build()) {
            assertThat(List.of(virtio0.get().name(), virtio1.get().name(), user.get().name(), plain.get().name()))
                    .containsExactly("virtio-mmio0", "virtio-mmio1", "probe0", "pio-0x700");
            assertThat(List.of(virtio0.get().irq().gsi(), virtio1.get().irq().gsi(), user.get().irq().gsi()))
                    .containsExactly(5, 6, 9);
            for (AtomicReference<DeviceContext> c : List.of(virtio0, virtio1, user, plain)) {
                assertThat(c.get().memory()).isSameAs(vm.machine().memory());
            }
            assertThat(user.get().interrupts().line(10).gsi()).isEqualTo(10);
            try (MsiVector vector = user.get().interrupts().msiVector()) {
                assertThat(vector.masked()).as("a new vector starts masked").isTrue();
            }

            Thread t = virtio1.get().threads().newThread(() -> {});
            assertThat(t.getName()).isEqualTo("ctxvm-virtio-mmio1");
            assertThat(t.isDaemon()).isTrue();

            RuntimeException cause = new RuntimeException("EIO");
            user.get().reportFatal("backend failed", cause);
            assertThat(vm.deviceErrors()).containsExactly(new DeviceError("probe0", "backend failed", cause));
        }
    }

    private static Device keep(AtomicReference<DeviceContext> into, DeviceContext ctx) {
        into.set(ctx);
        return new Probe();
    }

    @Test
    void aFailingVirtioFactoryIsAConfigErrorAndLeavesNothingBehind() {
        TestGuests.assumeKvm();
        MicrovmBuilder b = valid().virtioMmioTransport(ctx -> new Probe()).virtioMmioTransport(ctx -> {
            ctx.threads().newThread(() -> {}); // made, never started: nothing to join
            throw new IllegalStateException("no backend");
        });
        assertThatThrownBy(b::build).isInstanceOf(ConfigException.class);
        HostResources before = HostResources.now();
        for (int i = 0; i < 5; i++) {
            assertThatThrownBy(b::build)
                    .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("device"))
                    .hasMessageContaining("virtio-mmio transport 1: its factory failed")
                    .hasRootCauseMessage("no backend");
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void buildChecksTheImagesInGuestMemoryBeforeTheVmExists() throws Exception {
        TestGuests.assumeKvm();
        byte[] elf = Files.readAllBytes(TestGuests.elf("hello"));
        Path truncated = tmp.resolve("truncated.elf");
        Files.write(truncated, Arrays.copyOf(elf, 100));
        Microvm.builder().kernel(truncated).validate(); // the magic is right: only build() reads the segments
        assertThatThrownBy(() -> Microvm.builder().kernel(truncated).build())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("kernel"))
                .hasMessageContaining("truncated.elf");
        Path bigInitrd = tmp.resolve("big-initrd");
        Files.write(bigInitrd, new byte[3 << 20]);
        assertThatThrownBy(() -> valid().memoryMib(4).initrd(bigInitrd).build())
                .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("initrd"))
                .hasMessageContaining("initrd");
    }

    @Test
    void whatTheHostCannotDoIsAHostException() {
        TestGuests.assumeKvm();
        MicrovmBuilder huge = valid().memoryMib(1L << 40);
        huge.validate();
        assertThatThrownBy(huge::build).isInstanceOf(HostException.class).hasMessageContaining("more than this host has");
    }

    @Test
    void aFailureMidwayLeavesNothingBehind() throws Exception {
        TestGuests.assumeKvm();
        Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
        try {
            // the device factory runs, and fails, once the VM, its memory, devices and input poller exist
            MicrovmBuilder b = valid().serialInputFd(pair[0]).device(DeviceSpec.pio(0x700, 1, () -> {
                throw new IllegalStateException("no such device");
            }));
            assertThatThrownBy(b::build).isInstanceOf(ConfigException.class); // warms up lazily made JVM resources
            HostResources before = HostResources.now();
            for (int i = 0; i < 20; i++) {
                assertThatThrownBy(b::build)
                        .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("device"))
                        .hasMessageContaining("device at pio 0x700: its factory failed")
                        .hasRootCauseMessage("no such device");
            }
            HostResources.now().assertNothingLeftSince(before);
        } finally {
            pair[0].close();
            pair[1].close();
        }
    }

    static final class Probe implements Device {
        public String name() {
            return "probe";
        }

        public long read(long offset, int size) {
            return 0;
        }

        public void write(long offset, int size, long value) {}
    }

    @Test
    void ioMapShowsExactlyWhatTheGuestCanReach() {
        TestGuests.assumeKvm();
        try (Microvm vm = valid().build()) {
            List<String> map = vm.ioMap().stream().map(IoMapEntry::toString).toList();
            assertThat(map).contains(
                    "pio  0x0020-0x0021 pic-master (kindling)",
                    "pio  0x0040-0x0043 pit (kindling)",
                    "pio  0x0060-0x0060 i8042-data (kindling)",
                    "pio  0x0064-0x0064 i8042-cmd (kindling)",
                    "pio  0x03f8-0x03ff serial0 (kindling)",
                    "mmio 0xfec00000-0xfec00fff ioapic (kindling)",
                    "mmio 0xfee00000-0xfee00fff local-apic (kvm)");
            assertThat(map).noneMatch(s -> s.contains("rtc"));
        }
        try (Microvm vm = valid().pic(OnOffAuto.OFF).pit(OnOffAuto.OFF).isaSerial(false).rtc(OnOffAuto.ON).build()) {
            List<String> names = vm.ioMap().stream().map(IoMapEntry::device).toList();
            assertThat(names).containsExactlyInAnyOrder("i8042-data", "rtc", "i8042-cmd", "ioapic", "local-apic");
        }
        try (Microvm vm = valid().irqchip(IrqchipMode.KERNEL).build()) {
            assertThat(vm.ioMap().stream().filter(e -> e.owner() == IoMapEntry.Owner.KVM).map(IoMapEntry::device))
                    .contains("pic-master", "pic-slave", "elcr", "ioapic", "pit", "local-apic");
        }
    }

    @Test
    void autoKernelCmdlineAddsOneEntryPerTransport() {
        TestGuests.assumeKvm();
        try (Microvm vm = valid().cmdline("console=ttyS0").virtioMmioTransport(ctx -> new Probe())
                .virtioMmioTransport(ctx -> new Probe()).build()) {
            assertThat(vm.cmdline()).isEqualTo(
                    "console=ttyS0 virtio_mmio.device=512@0xd0000000:5 virtio_mmio.device=512@0xd0000200:6");
            assertThat(vm.ioMap()).extracting(IoMapEntry::toString)
                    .contains("mmio 0xd0000000-0xd00001ff probe (kindling)", "mmio 0xd0000200-0xd00003ff probe (kindling)");
        }
        try (Microvm vm = valid().cmdline("console=ttyS0").autoKernelCmdline(false)
                .virtioMmioTransport(ctx -> new Probe()).build()) {
            assertThat(vm.cmdline()).isEqualTo("console=ttyS0");
        }
    }

    @Test
    void virtioDisksAreCheckedBeforeAnythingIsAllocated() throws Exception {
        Path k = elfMagic();
        Path img = Files.write(tmp.resolve("disk.img"), new byte[4096]);
        Microvm.builder().kernel(k).virtioBlk(img).validate();

        assertThat(configError(Microvm.builder().kernel(k).virtioBlk(tmp.resolve("missing.img")), "virtioBlk"))
                .hasMessage("virtio-blk disk: image " + tmp.resolve("missing.img") + " does not exist");
        assertThat(configError(Microvm.builder().kernel(k).virtioBlk(tmp), "virtioBlk")).hasMessageContaining("is a directory");
        assertThat(configError(Microvm.builder().kernel(k).virtioBlk(Path.of("/dev/null")), "virtioBlk"))
                .hasMessageContaining("neither a file nor a block device");

        Path unreadable = Files.write(tmp.resolve("unreadable.img"), new byte[4096]);
        Files.setPosixFilePermissions(unreadable, PosixFilePermissions.fromString("-w-------"));
        assertThat(configError(Microvm.builder().kernel(k).virtioBlk(unreadable), "virtioBlk"))
                .hasMessageContaining("unreadable.img is not readable");

        Path readOnly = Files.write(tmp.resolve("ro.img"), new byte[4096]);
        Files.setPosixFilePermissions(readOnly, PosixFilePermissions.fromString("r--r--r--"));
        assertThat(configError(Microvm.builder().kernel(k).virtioBlk(readOnly), "virtioBlk"))
                .hasMessageContaining("ro.img is read-only (no write permission)");
        assertThat(configError(Microvm.builder().kernel(k).rootDevice(readOnly, BlkOptions.defaults()), "rootDevice"))
                .hasMessageContaining("read-only");
        Microvm.builder().kernel(k).virtioBlk(readOnly, BlkOptions.defaults().withReadOnly(true)).validate();

        // one image may back several read-only disks, but a written one only one disk
        Path link = Files.createSymbolicLink(tmp.resolve("link.img"), img);
        BlkOptions ro = BlkOptions.defaults().withReadOnly(true);
        Microvm.builder().kernel(k).virtioBlk(img, ro).virtioBlk(link, ro).validate();
        assertThat(configError(Microvm.builder().kernel(k).virtioBlk(img).virtioBlk(link), "virtioBlk"))
                .hasMessageContaining("both use");
        assertThat(configError(Microvm.builder().kernel(k).virtioBlk(img, ro).rootDevice(img, BlkOptions.defaults()),
                "rootDevice")).hasMessageContaining("attached only once");

        // a serial over 20 bytes cannot even be given: the options refuse it
        Microvm.builder().kernel(k).virtioBlk(img, BlkOptions.defaults().withSerial("x".repeat(20))).validate();
        assertThatThrownBy(() -> BlkOptions.defaults().withSerial("\u00e9".repeat(11)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("22 bytes");

        Path other = Files.write(tmp.resolve("other.img"), new byte[4096]);
        assertThat(configError(Microvm.builder().kernel(k).rootDevice(img, BlkOptions.defaults())
                .rootDevice(other, BlkOptions.defaults()), "rootDevice")).hasMessageContaining("both root devices");

        // the ninth virtio device has no transport, whatever it is
        MicrovmBuilder nine = Microvm.builder().kernel(k).virtioConsole().virtioRng();
        for (int i = 0; i < 6; i++) {
            nine.virtioMmioTransport(ctx -> new Probe());
        }
        nine.validate();
        assertThat(configError(nine.virtioBlk(img), "virtioBlk")).hasMessage("9 virtio-mmio devices, but microvm has 8 transports");

        assertThat(configError(Microvm.builder().kernel(k).virtioConsole().virtioConsole(), "virtioConsole"))
                .hasMessageContaining("given twice");
        Microvm.builder().kernel(k).virtioConsole().virtioConsole(null, null).virtioConsole(null, OutputStream.nullOutputStream())
                .validate();
    }

    @Test
    void theRootDeviceAddsRootToTheCommandLine() throws Exception {
        Path k = elfMagic();
        Path a = Files.write(tmp.resolve("a.img"), new byte[4096]);
        Path b = Files.write(tmp.resolve("b.img"), new byte[4096]);
        assertThat(Microvm.builder().kernel(k).cmdline("console=hvc0").rootDevice(a, BlkOptions.defaults())
                .effectiveCmdline()).isEqualTo("console=hvc0 virtio_mmio.device=512@0xd0000000:5 root=/dev/vda rw");
        // the letter is the disk's place among the disks, not among the transports
        assertThat(Microvm.builder().kernel(k).virtioRng().virtioBlk(a).rootDevice(b, BlkOptions.defaults().withReadOnly(true))
                .autoKernelCmdline(false).effectiveCmdline()).isEqualTo("root=/dev/vdb ro");
        assertThat(configError(Microvm.builder().kernel(k).cmdline("root=/dev/sda1").rootDevice(a, BlkOptions.defaults()),
                "rootDevice")).hasMessageContaining("has root=/dev/sda1 of its own");
        assertThat(Microvm.builder().kernel(k).cmdline("root=/dev/sda1").virtioBlk(a).autoKernelCmdline(false)
                .effectiveCmdline()).isEqualTo("root=/dev/sda1");
    }

    @Test
    void jsonDrivesAreCheckedByValidateUnderTheirOwnName() throws Exception {
        Path k = elfMagic();
        Path json = Files.writeString(tmp.resolve("vm.json"), """
                {"boot-source": {"kernel_image_path": "%s"},
                 "drives": [{"drive_id": "data", "path_on_host": "%s", "is_root_device": false, "is_read_only": false}]}"""
                .formatted(k, tmp.resolve("gone.img")));
        assertThat(configError(Microvm.builder().config(json), "drives"))
                .hasMessage("drive 'data': image " + tmp.resolve("gone.img") + " does not exist");
    }

    @Test
    void virtioDevicesTakeTransportsInOrderAndImagesAreLocked() throws Exception {
        TestGuests.assumeKvm();
        Path disk = Files.write(tmp.resolve("disk.img"), new byte[1 << 20]);
        Path seed = Files.write(tmp.resolve("seed.img"), new byte[1 << 20]);
        BlkOptions ro = BlkOptions.defaults().withReadOnly(true);
        MicrovmBuilder b = valid().cmdline("console=hvc0").isaSerial(false).rootDevice(disk, BlkOptions.defaults())
                .virtioBlk(seed, ro).virtioConsole().virtioRng();
        b.build().close(); // warms up lazily made JVM resources
        HostResources before = HostResources.now();
        try (Microvm vm = b.build()) {
            assertThat(vm.cmdline()).isEqualTo("console=hvc0 virtio_mmio.device=512@0xd0000000:5"
                    + " virtio_mmio.device=512@0xd0000200:6 virtio_mmio.device=512@0xd0000400:7"
                    + " virtio_mmio.device=512@0xd0000600:8 root=/dev/vda rw");
            assertThat(vm.ioMap()).extracting(IoMapEntry::toString).contains(
                    "mmio 0xd0000000-0xd00001ff virtio-mmio0 (kindling)", "mmio 0xd0000600-0xd00007ff virtio-mmio3 (kindling)");
            // a writable image is this VM's alone; a read-only one may be shared
            assertThatThrownBy(() -> valid().virtioBlk(disk, ro).build())
                    .isInstanceOfSatisfying(ConfigException.class, e -> assertThat(e.field()).isEqualTo("virtioBlk"))
                    .hasMessageContaining("disk.img");
            valid().virtioBlk(seed, ro).build().close();
            assertThatThrownBy(() -> valid().virtioBlk(seed).build()).isInstanceOf(ConfigException.class)
                    .hasMessageContaining("seed.img");
            // with the serial port off, the console's input goes to the virtio console
            vm.console().send("typed");
        }
        HostResources.now().assertNothingLeftSince(before);
        try (Microvm vm = valid().isaSerial(false).virtioRng().build()) {
            assertThatThrownBy(() -> vm.console().send("x")).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("no virtioConsole()");
        }
        try (Microvm vm = valid().virtioBlk(disk).build()) {
            assertThat(vm.cmdline()).doesNotContain("root=");
        }
    }
}
