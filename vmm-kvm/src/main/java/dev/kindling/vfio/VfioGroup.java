package dev.kindling.vfio;

import static dev.kindling.sys.CLayouts.offsetOf;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.SyscallException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

/** A VFIO group ({@code /dev/vfio/N}): the devices of one IOMMU group, handed out as device fds. */
public final class VfioGroup implements AutoCloseable {
    private static final long ARGSZ = offsetOf(VfioStructs.VFIO_GROUP_STATUS, "argsz"),
            FLAGS = offsetOf(VfioStructs.VFIO_GROUP_STATUS, "flags");

    private final Fd fd;
    private final int number;

    private VfioGroup(Fd fd, int number) {
        this.fd = fd;
        this.number = number;
    }

    /**
     * The IOMMU group of the device at {@code sysfsDevice} (e.g. {@code /sys/bus/platform/devices/fff51000.ethernet}),
     * read from its {@code iommu_group} link.
     */
    public static int groupOf(Path sysfsDevice) {
        Path link = sysfsDevice.resolve("iommu_group");
        try {
            return Integer.parseInt(Files.readSymbolicLink(link).getFileName().toString());
        } catch (IOException | NumberFormatException e) {
            throw new VfioException(sysfsDevice + " has no IOMMU group (" + link + ": " + e.getMessage()
                    + "); is it bound to vfio-platform?", e);
        }
    }

    /** Opens {@code /dev/vfio/<number>}. */
    public static VfioGroup open(int number) {
        return open(Path.of("/dev/vfio", Integer.toString(number)), number);
    }

    static VfioGroup open(Path node, int number) {
        if (!Files.exists(node)) {
            throw new VfioException(node + " does not exist: IOMMU group " + number + " has no device bound to a VFIO "
                    + "driver (bind it to vfio-platform through its driver_override)");
        }
        try {
            return new VfioGroup(Fd.adopt(Libc.open(node.toString(), Libc.O_RDWR), "vfio group " + number), number);
        } catch (SyscallException e) {
            throw new VfioException("cannot open VFIO group " + node + ": " + e.getMessage(), e);
        }
    }

    public int number() {
        return number;
    }

    /** Whether every device of the group is bound to VFIO (or unbound), so the group can be used. */
    public boolean isViable() {
        return (status() & VfioConstants.GROUP_FLAGS_VIABLE) != 0;
    }

    private int status() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(VfioStructs.VFIO_GROUP_STATUS);
            s.set(JAVA_INT, ARGSZ, (int) s.byteSize());
            Libc.ioctl(fd, VfioIoctls.VFIO_GROUP_GET_STATUS, s);
            return s.get(JAVA_INT, FLAGS);
        }
    }

    /** Puts the group in {@code container}; fails with a clear error if the group is not viable. */
    public void setContainer(VfioContainer container) {
        if (!isViable()) {
            throw new VfioException("VFIO group " + number + " is not viable: some device in it is bound to a host driver");
        }
        try (Arena arena = Arena.ofConfined()) {
            Libc.ioctl(fd, VfioIoctls.VFIO_GROUP_SET_CONTAINER, arena.allocateFrom(JAVA_INT, container.fd().value()));
        }
    }

    public void unsetContainer() {
        Libc.ioctl(fd, VfioIoctls.VFIO_GROUP_UNSET_CONTAINER, 0);
    }

    /** The device {@code name} of the group (its sysfs name, e.g. {@code fff51000.ethernet}). */
    public VfioDevice device(String name) {
        try (Arena arena = Arena.ofConfined()) {
            int d = Libc.ioctl(fd, VfioIoctls.VFIO_GROUP_GET_DEVICE_FD, arena.allocateFrom(name));
            return new VfioDevice(Fd.adopt(d, "vfio device " + name), name);
        } catch (SyscallException e) {
            throw new VfioException("VFIO group " + number + " has no device " + name + " it can hand out: " + e.getMessage(), e);
        }
    }

    Fd fd() {
        return fd;
    }

    @Override
    public void close() {
        fd.close();
    }
}
