package dev.kindling.devices.vfio;

import dev.kindling.device.Device;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.Mapping;
import dev.kindling.vfio.IrqInfo;
import dev.kindling.vfio.RegionInfo;
import dev.kindling.vfio.VfioConstants;
import dev.kindling.vfio.VfioContainer;
import dev.kindling.vfio.VfioDevice;
import dev.kindling.vfio.VfioException;
import dev.kindling.vfio.VfioGroup;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A platform device bound to vfio-platform on this host, opened by its sysfs path
 * ({@code /sys/bus/platform/devices/<name>}): its IOMMU group in a container of its own.
 */
public final class VfioPlatformBackend implements PlatformDeviceBackend {
    private final String name;
    private final List<String> compatible;
    private final VfioContainer container;
    private final VfioGroup group;
    private final VfioDevice device;
    private final List<RegionInfo> infos = new ArrayList<>();
    private final List<Region> regions = new ArrayList<>();
    private final List<Irq> irqs = new ArrayList<>();
    private final Mapping[] maps;
    private final List<long[]> dma = new ArrayList<>();
    private final List<AutoCloseable> registrations = new ArrayList<>(); // guarded by this

    private VfioPlatformBackend(String name, List<String> compatible, VfioContainer container, VfioGroup group,
                                VfioDevice device) {
        this.name = name;
        this.compatible = compatible;
        this.container = container;
        this.group = group;
        this.device = device;
        VfioDevice.Info info = device.info();
        if (!info.platform()) {
            throw new VfioException(name + " is not a platform device (VFIO device flags 0x" + Integer.toHexString(info.flags()) + ")");
        }
        for (int i = 0; i < info.regions(); i++) {
            RegionInfo r = device.region(i);
            infos.add(r);
            regions.add(new Region(i, r.size(), r.readable(), r.writable(), r.mmappable() && r.sparseMmap().isEmpty()));
        }
        for (int i = 0; i < info.irqs(); i++) {
            IrqInfo q = device.irq(i);
            if (!q.eventfd() || q.count() != 1) {
                throw new VfioException(name + ": interrupt " + i + " cannot signal one eventfd (flags 0x"
                        + Integer.toHexString(q.flags()) + ", count " + q.count() + ")");
            }
            irqs.add(new Irq(i, q.automasked()));
        }
        this.maps = new Mapping[regions.size()];
    }

    /** Opens the device at {@code sysfsDevice}; a {@link VfioException} names what is missing. */
    public static VfioPlatformBackend open(Path sysfsDevice) {
        if (!Files.isDirectory(sysfsDevice)) {
            throw new VfioException(sysfsDevice + " is not a device directory in sysfs");
        }
        String name = sysfsDevice.getFileName().toString();
        List<String> compatible = compatibleOf(sysfsDevice);
        int number = VfioGroup.groupOf(sysfsDevice);
        VfioContainer container = VfioContainer.open();
        VfioGroup group = null;
        VfioDevice device = null;
        try {
            group = VfioGroup.open(number);
            group.setContainer(container);
            container.setIommu(iommuType(container));
            device = group.device(name);
            return new VfioPlatformBackend(name, compatible, container, group, device);
        } catch (RuntimeException e) {
            if (device != null) {
                device.close();
            }
            if (group != null) {
                group.close();
            }
            container.close();
            throw e;
        }
    }

    /** The host device tree's {@code compatible} of the device (NUL-separated in sysfs); empty without one (ACPI). */
    static List<String> compatibleOf(Path sysfsDevice) {
        Path p = sysfsDevice.resolve("of_node").resolve("compatible");
        if (!Files.isReadable(p)) {
            return List.of();
        }
        try {
            return Arrays.stream(Files.readString(p, StandardCharsets.US_ASCII).split("\0")).filter(c -> !c.isEmpty()).toList();
        } catch (IOException e) {
            throw new VfioException("cannot read " + p + ": " + e.getMessage());
        }
    }

    private static int iommuType(VfioContainer c) {
        // not no-IOMMU (as QEMU): without translation the device's DMA cannot reach guest-physical addresses
        for (int type : new int[] {VfioConstants.TYPE1V2_IOMMU, VfioConstants.TYPE1_IOMMU}) {
            if (c.checkExtension(type)) {
                return type;
            }
        }
        throw new VfioException("the VFIO container offers no type1 IOMMU: passthrough needs an IOMMU (no-IOMMU mode "
                + "cannot map guest memory for the device's DMA)");
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public List<String> compatible() {
        return compatible;
    }

    @Override
    public List<Region> regions() {
        return List.copyOf(regions);
    }

    @Override
    public List<Irq> irqs() {
        return List.copyOf(irqs);
    }

    /** The device's group, for the hypervisor's registration of it ({@link #closeBeforeGroup}). */
    public VfioGroup group() {
        return group;
    }

    /**
     * Keeps {@code registration} (KVM's record of {@link #group()}) until {@link #close()}, which
     * closes it before the group.
     */
    public synchronized void closeBeforeGroup(AutoCloseable registration) {
        registrations.add(registration);
    }

    @Override
    public synchronized MemorySegment map(int region) {
        if (maps[region] == null) {
            maps[region] = device.map(infos.get(region), 0, VfioPlatformDevice.pages(regions.get(region).size()));
        }
        return maps[region].segment();
    }

    @Override
    public long read(int region, long offset, int size) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment b = arena.allocate(8);
            if (device.read(infos.get(region), offset, b.asSlice(0, size)) != size) {
                return Device.ones(size);
            }
            return b.get(ValueLayout.JAVA_LONG_UNALIGNED, 0) & Device.ones(size);
        }
    }

    @Override
    public void write(int region, long offset, int size, long value) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment b = arena.allocate(8);
            b.set(ValueLayout.JAVA_LONG_UNALIGNED, 0, value);
            device.write(infos.get(region), offset, b.asSlice(0, size));
        }
    }

    @Override
    public void setTrigger(int irq, EventFd trigger) {
        if (trigger == null) {
            device.clearTriggers(irq);
        } else {
            device.setTriggers(irq, 0, List.of(trigger));
        }
    }

    @Override
    public void setUnmaskEventFd(int irq, EventFd unmask) {
        if (unmask != null) {
            device.setUnmaskEventFd(irq, 0, unmask);
        }
    }

    @Override
    public void unmask(int irq) {
        device.unmask(irq, 0);
    }

    @Override
    public synchronized void mapDma(long iova, MemorySegment host) {
        container.mapDma(iova, host, true);
        dma.add(new long[] {iova, host.byteSize()});
    }

    @Override
    public void reset() {
        if (device.info().resettable()) {
            device.reset();
        }
    }

    /** Each step on its own, so one that fails leaves the others done: the container fd is what pins guest RAM. */
    @Override
    public synchronized void close() {
        RuntimeException failure = null;
        for (Irq q : irqs) {
            failure = step(failure, () -> device.clearTriggers(q.index()));
        }
        for (long[] m : dma) {
            failure = step(failure, () -> container.unmapDma(m[0], m[1]));
        }
        for (Mapping m : maps) {
            if (m != null) {
                failure = step(failure, m::close);
            }
        }
        failure = step(failure, device::close);
        for (AutoCloseable r : registrations) {
            failure = step(failure, () -> {
                try {
                    r.close();
                } catch (Exception e) {
                    throw new VfioException(name + ": removing a registration of VFIO group " + group.number() + " failed", e);
                }
            });
        }
        failure = step(failure, group::unsetContainer);
        failure = step(failure, group::close);
        failure = step(failure, container::close);
        if (failure != null) {
            throw failure;
        }
    }

    private static RuntimeException step(RuntimeException failure, Runnable r) {
        try {
            r.run();
        } catch (RuntimeException e) {
            if (failure == null) {
                return e;
            }
            failure.addSuppressed(e);
        }
        return failure;
    }
}
