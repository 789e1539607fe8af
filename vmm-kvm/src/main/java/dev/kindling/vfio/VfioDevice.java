package dev.kindling.vfio;

import static dev.kindling.sys.CLayouts.offsetOf;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.kindling.sys.EventFd;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.Mapping;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

/** A device fd of a VFIO group: its info, regions (read, written or mapped) and interrupts. */
public final class VfioDevice implements AutoCloseable {
    private static final long D_ARGSZ = offsetOf(VfioStructs.VFIO_DEVICE_INFO, "argsz"),
            D_FLAGS = offsetOf(VfioStructs.VFIO_DEVICE_INFO, "flags"),
            D_REGIONS = offsetOf(VfioStructs.VFIO_DEVICE_INFO, "num_regions"),
            D_IRQS = offsetOf(VfioStructs.VFIO_DEVICE_INFO, "num_irqs"),
            R_ARGSZ = offsetOf(VfioStructs.VFIO_REGION_INFO, "argsz"),
            R_INDEX = offsetOf(VfioStructs.VFIO_REGION_INFO, "index"),
            I_ARGSZ = offsetOf(VfioStructs.VFIO_IRQ_INFO, "argsz"),
            I_FLAGS = offsetOf(VfioStructs.VFIO_IRQ_INFO, "flags"),
            I_INDEX = offsetOf(VfioStructs.VFIO_IRQ_INFO, "index"),
            I_COUNT = offsetOf(VfioStructs.VFIO_IRQ_INFO, "count"),
            S_ARGSZ = offsetOf(VfioStructs.VFIO_IRQ_SET, "argsz"),
            S_FLAGS = offsetOf(VfioStructs.VFIO_IRQ_SET, "flags"),
            S_INDEX = offsetOf(VfioStructs.VFIO_IRQ_SET, "index"),
            S_START = offsetOf(VfioStructs.VFIO_IRQ_SET, "start"),
            S_COUNT = offsetOf(VfioStructs.VFIO_IRQ_SET, "count"),
            S_DATA = offsetOf(VfioStructs.VFIO_IRQ_SET, "data");
    /** More than any region's capability chain takes; the kernel says if it needs more. */
    private static final int MAX_REGION_INFO = 64 << 10;

    private final Fd fd;
    private final String name;

    VfioDevice(Fd fd, String name) {
        this.fd = fd;
        this.name = name;
    }

    /** What VFIO_DEVICE_GET_INFO says: the kind of device ({@link VfioConstants}{@code .DEVICE_FLAGS_*}) and its counts. */
    public record Info(int flags, int regions, int irqs) {
        public boolean platform() {
            return (flags & VfioConstants.DEVICE_FLAGS_PLATFORM) != 0;
        }

        public boolean resettable() {
            return (flags & VfioConstants.DEVICE_FLAGS_RESET) != 0;
        }
    }

    public String name() {
        return name;
    }

    public Info info() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(VfioStructs.VFIO_DEVICE_INFO);
            s.set(JAVA_INT, D_ARGSZ, (int) s.byteSize());
            Libc.ioctl(fd, VfioIoctls.VFIO_DEVICE_GET_INFO, s);
            return new Info(s.get(JAVA_INT, D_FLAGS), s.get(JAVA_INT, D_REGIONS), s.get(JAVA_INT, D_IRQS));
        }
    }

    /** Region {@code index}, its capability chain included (asked for again with the size the kernel wants). */
    public RegionInfo region(int index) {
        int argsz = (int) VfioStructs.VFIO_REGION_INFO.byteSize();
        try (Arena arena = Arena.ofConfined()) {
            while (true) {
                MemorySegment s = arena.allocate(argsz, 8);
                s.set(JAVA_INT, R_ARGSZ, argsz);
                s.set(JAVA_INT, R_INDEX, index);
                Libc.ioctl(fd, VfioIoctls.VFIO_DEVICE_GET_REGION_INFO, s);
                int wanted = s.get(JAVA_INT, R_ARGSZ);
                if (Integer.compareUnsigned(wanted, argsz) <= 0) {
                    return RegionInfo.parse(s);
                }
                if (Integer.compareUnsigned(wanted, MAX_REGION_INFO) > 0) {
                    throw new VfioException(name + ": region " + index + " info of " + Integer.toUnsignedString(wanted)
                            + " bytes, more than " + MAX_REGION_INFO);
                }
                argsz = wanted;
            }
        }
    }

    public IrqInfo irq(int index) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(VfioStructs.VFIO_IRQ_INFO);
            s.set(JAVA_INT, I_ARGSZ, (int) s.byteSize());
            s.set(JAVA_INT, I_INDEX, index);
            Libc.ioctl(fd, VfioIoctls.VFIO_DEVICE_GET_IRQ_INFO, s);
            return new IrqInfo(index, s.get(JAVA_INT, I_FLAGS), s.get(JAVA_INT, I_COUNT));
        }
    }

    /** The kernel signals {@code triggers.get(i)} when interrupt {@code start + i} of {@code index} fires. */
    public void setTriggers(int index, int start, List<EventFd> triggers) {
        setEventFds(index, start, VfioConstants.IRQ_SET_ACTION_TRIGGER, triggers);
    }

    /** Signalling {@code unmask} unmasks interrupt {@code start} (KVM's resample eventfd of a level irqfd). */
    public void setUnmaskEventFd(int index, int start, EventFd unmask) {
        setEventFds(index, start, VfioConstants.IRQ_SET_ACTION_UNMASK, List.of(unmask));
    }

    /** Stops every trigger of {@code index}. */
    public void clearTriggers(int index) {
        irqSet(index, 0, 0, VfioConstants.IRQ_SET_DATA_NONE | VfioConstants.IRQ_SET_ACTION_TRIGGER, null);
    }

    /** Unmasks interrupt {@code start} of {@code index} now (the slow path, after the guest acknowledged it). */
    public void unmask(int index, int start) {
        irqSet(index, start, 1, VfioConstants.IRQ_SET_DATA_NONE | VfioConstants.IRQ_SET_ACTION_UNMASK, null);
    }

    public void mask(int index, int start) {
        irqSet(index, start, 1, VfioConstants.IRQ_SET_DATA_NONE | VfioConstants.IRQ_SET_ACTION_MASK, null);
    }

    private void setEventFds(int index, int start, int action, List<EventFd> fds) {
        int[] values = fds.stream().mapToInt(e -> e.fd().value()).toArray();
        irqSet(index, start, values.length, VfioConstants.IRQ_SET_DATA_EVENTFD | action, values);
    }

    private void irqSet(int index, int start, int count, int flags, int[] eventFds) {
        long data = eventFds == null ? 0 : (long) eventFds.length * Integer.BYTES;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(S_DATA + data, 8);
            s.set(JAVA_INT, S_ARGSZ, (int) s.byteSize());
            s.set(JAVA_INT, S_FLAGS, flags);
            s.set(JAVA_INT, S_INDEX, index);
            s.set(JAVA_INT, S_START, start);
            s.set(JAVA_INT, S_COUNT, count);
            for (int i = 0; eventFds != null && i < eventFds.length; i++) {
                s.set(JAVA_INT, S_DATA + (long) i * Integer.BYTES, eventFds[i]);
            }
            Libc.ioctl(fd, VfioIoctls.VFIO_DEVICE_SET_IRQS, s);
        }
    }

    /** Resets the device (if {@link Info#resettable()}). */
    public void reset() {
        Libc.ioctl(fd, VfioIoctls.VFIO_DEVICE_RESET, 0);
    }

    /** Reads {@code into.byteSize()} bytes at {@code offset} of region {@code r}; returns the bytes read. */
    public long read(RegionInfo r, long offset, MemorySegment into) {
        return Libc.pread(fd, into, into.byteSize(), r.offset() + offset);
    }

    public long write(RegionInfo r, long offset, MemorySegment from) {
        return Libc.pwrite(fd, from, from.byteSize(), r.offset() + offset);
    }

    /** Maps {@code size} bytes at {@code offset} of region {@code r}, shared, read-write as the region allows. */
    public Mapping map(RegionInfo r, long offset, long size) {
        int prot = (r.readable() ? Libc.PROT_READ : 0) | (r.writable() ? Libc.PROT_WRITE : 0);
        return Mapping.of(fd, r.offset() + offset, size, prot, Libc.MAP_SHARED);
    }

    Fd fd() {
        return fd;
    }

    @Override
    public void close() {
        fd.close();
    }
}
