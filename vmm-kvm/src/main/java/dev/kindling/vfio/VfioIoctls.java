package dev.kindling.vfio;

import dev.kindling.sys.Ioctl;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** Every VFIO ioctl Kindling issues. VFIO encodes no size or direction: each is {@code _IO(';', 100 + n)}. */
public final class VfioIoctls {
    /** {@code VFIO_TYPE}. */
    public static final int VFIO_TYPE = ';';
    private static final int VFIO_BASE = 100;
    private static final List<Ioctl> ALL = new ArrayList<>();

    private VfioIoctls() {}

    private static Ioctl io(String name, int n) {
        Ioctl ioctl = Ioctl.io(name, VFIO_TYPE, VFIO_BASE + n);
        ALL.add(ioctl);
        return ioctl;
    }

    // container
    public static final Ioctl VFIO_GET_API_VERSION = io("VFIO_GET_API_VERSION", 0);
    public static final Ioctl VFIO_CHECK_EXTENSION = io("VFIO_CHECK_EXTENSION", 1);
    public static final Ioctl VFIO_SET_IOMMU = io("VFIO_SET_IOMMU", 2);
    // group
    public static final Ioctl VFIO_GROUP_GET_STATUS = io("VFIO_GROUP_GET_STATUS", 3);
    public static final Ioctl VFIO_GROUP_SET_CONTAINER = io("VFIO_GROUP_SET_CONTAINER", 4);
    public static final Ioctl VFIO_GROUP_UNSET_CONTAINER = io("VFIO_GROUP_UNSET_CONTAINER", 5);
    public static final Ioctl VFIO_GROUP_GET_DEVICE_FD = io("VFIO_GROUP_GET_DEVICE_FD", 6);
    // device
    public static final Ioctl VFIO_DEVICE_GET_INFO = io("VFIO_DEVICE_GET_INFO", 7);
    public static final Ioctl VFIO_DEVICE_GET_REGION_INFO = io("VFIO_DEVICE_GET_REGION_INFO", 8);
    public static final Ioctl VFIO_DEVICE_GET_IRQ_INFO = io("VFIO_DEVICE_GET_IRQ_INFO", 9);
    public static final Ioctl VFIO_DEVICE_SET_IRQS = io("VFIO_DEVICE_SET_IRQS", 10);
    public static final Ioctl VFIO_DEVICE_RESET = io("VFIO_DEVICE_RESET", 11);
    // type1 IOMMU, on the container
    public static final Ioctl VFIO_IOMMU_GET_INFO = io("VFIO_IOMMU_GET_INFO", 12);
    public static final Ioctl VFIO_IOMMU_MAP_DMA = io("VFIO_IOMMU_MAP_DMA", 13);
    public static final Ioctl VFIO_IOMMU_UNMAP_DMA = io("VFIO_IOMMU_UNMAP_DMA", 14);

    public static List<Ioctl> all() {
        return Collections.unmodifiableList(ALL);
    }
}
