package dev.kindling.vfio;

import static dev.kindling.sys.CLayouts.offsetOf;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.SyscallException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A VFIO container ({@code /dev/vfio/vfio}): the IOMMU context the groups of a VM share. Set the
 * IOMMU type once a group is in it ({@link VfioGroup#setContainer}), then map guest RAM for DMA.
 */
public final class VfioContainer implements AutoCloseable {
    public static final Path DEFAULT_PATH = Path.of("/dev/vfio/vfio");

    private static final long ARGSZ = offsetOf(VfioStructs.VFIO_IOMMU_TYPE1_DMA_MAP, "argsz"),
            FLAGS = offsetOf(VfioStructs.VFIO_IOMMU_TYPE1_DMA_MAP, "flags"),
            VADDR = offsetOf(VfioStructs.VFIO_IOMMU_TYPE1_DMA_MAP, "vaddr"),
            MAP_IOVA = offsetOf(VfioStructs.VFIO_IOMMU_TYPE1_DMA_MAP, "iova"),
            MAP_SIZE = offsetOf(VfioStructs.VFIO_IOMMU_TYPE1_DMA_MAP, "size"),
            UNMAP_IOVA = offsetOf(VfioStructs.VFIO_IOMMU_TYPE1_DMA_UNMAP, "iova"),
            UNMAP_SIZE = offsetOf(VfioStructs.VFIO_IOMMU_TYPE1_DMA_UNMAP, "size"),
            PGSIZES = offsetOf(VfioStructs.VFIO_IOMMU_TYPE1_INFO, "iova_pgsizes");

    private final Fd fd;

    private VfioContainer(Fd fd) {
        this.fd = fd;
    }

    /** Opens {@link #DEFAULT_PATH}. */
    public static VfioContainer open() {
        return open(DEFAULT_PATH);
    }

    /** Opens the container node at {@code path} and checks its API version. */
    public static VfioContainer open(Path path) {
        if (!Files.exists(path)) {
            throw new VfioException(path + " does not exist: this kernel has no VFIO (CONFIG_VFIO; load the vfio and "
                    + "vfio_iommu_type1 modules)");
        }
        Fd fd;
        try {
            fd = Fd.adopt(Libc.open(path.toString(), Libc.O_RDWR), "vfio container");
        } catch (SyscallException e) {
            throw new VfioException("cannot open the VFIO container " + path + ": " + e.getMessage(), e);
        }
        try {
            int version = Libc.ioctl(fd, VfioIoctls.VFIO_GET_API_VERSION, 0);
            if (version != VfioConstants.API_VERSION) {
                throw new VfioException(path + " speaks VFIO API version " + version + ", not " + VfioConstants.API_VERSION);
            }
            return new VfioContainer(fd);
        } catch (RuntimeException e) {
            fd.close();
            if (e instanceof SyscallException s) {
                throw new VfioException(path + " is not a VFIO container: " + s.getMessage(), s);
            }
            throw e;
        }
    }

    /** Whether the container offers extension {@code extension} (an IOMMU type such as {@link VfioConstants#TYPE1V2_IOMMU}). */
    public boolean checkExtension(int extension) {
        return Libc.ioctl(fd, VfioIoctls.VFIO_CHECK_EXTENSION, extension) > 0;
    }

    /** Chooses the IOMMU type; needs at least one group in the container. */
    public void setIommu(int type) {
        Libc.ioctl(fd, VfioIoctls.VFIO_SET_IOMMU, type);
    }

    /** The IOVA page sizes the type1 IOMMU supports, as a bitmap. */
    public long iovaPageSizes() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(VfioStructs.VFIO_IOMMU_TYPE1_INFO);
            s.set(JAVA_INT, ARGSZ, (int) s.byteSize());
            Libc.ioctl(fd, VfioIoctls.VFIO_IOMMU_GET_INFO, s);
            return s.get(JAVA_LONG, PGSIZES);
        }
    }

    /** Lets the devices of the container reach {@code host} at {@code iova} (guest RAM at its guest address). */
    public void mapDma(long iova, MemorySegment host, boolean deviceWrites) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(VfioStructs.VFIO_IOMMU_TYPE1_DMA_MAP);
            s.set(JAVA_INT, ARGSZ, (int) s.byteSize());
            s.set(JAVA_INT, FLAGS, VfioConstants.DMA_MAP_FLAG_READ | (deviceWrites ? VfioConstants.DMA_MAP_FLAG_WRITE : 0));
            s.set(JAVA_LONG, VADDR, host.address());
            s.set(JAVA_LONG, MAP_IOVA, iova);
            s.set(JAVA_LONG, MAP_SIZE, host.byteSize());
            Libc.ioctl(fd, VfioIoctls.VFIO_IOMMU_MAP_DMA, s);
        }
    }

    public void unmapDma(long iova, long size) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(VfioStructs.VFIO_IOMMU_TYPE1_DMA_UNMAP);
            s.set(JAVA_INT, ARGSZ, (int) s.byteSize());
            s.set(JAVA_LONG, UNMAP_IOVA, iova);
            s.set(JAVA_LONG, UNMAP_SIZE, size);
            Libc.ioctl(fd, VfioIoctls.VFIO_IOMMU_UNMAP_DMA, s);
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
