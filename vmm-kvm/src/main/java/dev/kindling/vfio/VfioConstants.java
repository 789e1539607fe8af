package dev.kindling.vfio;

import java.util.Map;

/** Numeric constants of {@code <linux/vfio.h>} that Kindling uses, each with its C name in {@link #all()}. */
public final class VfioConstants {
    private VfioConstants() {}

    public static final int API_VERSION = 0;

    // IOMMU types (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU)
    public static final int TYPE1_IOMMU = 1;
    public static final int TYPE1V2_IOMMU = 3;
    public static final int NOIOMMU_IOMMU = 8;

    public static final int GROUP_FLAGS_VIABLE = 1;
    public static final int GROUP_FLAGS_CONTAINER_SET = 2;

    public static final int DEVICE_FLAGS_RESET = 1;
    public static final int DEVICE_FLAGS_PCI = 2;
    public static final int DEVICE_FLAGS_PLATFORM = 4;
    public static final int DEVICE_FLAGS_AMBA = 8;
    public static final int DEVICE_FLAGS_CAPS = 1 << 7;

    public static final int REGION_INFO_FLAG_READ = 1;
    public static final int REGION_INFO_FLAG_WRITE = 2;
    public static final int REGION_INFO_FLAG_MMAP = 4;
    public static final int REGION_INFO_FLAG_CAPS = 8;
    public static final int REGION_INFO_CAP_SPARSE_MMAP = 1;
    public static final int REGION_INFO_CAP_TYPE = 2;

    public static final int IRQ_INFO_EVENTFD = 1;
    public static final int IRQ_INFO_MASKABLE = 2;
    public static final int IRQ_INFO_AUTOMASKED = 4;
    public static final int IRQ_INFO_NORESIZE = 8;

    public static final int IRQ_SET_DATA_NONE = 1;
    public static final int IRQ_SET_DATA_BOOL = 2;
    public static final int IRQ_SET_DATA_EVENTFD = 4;
    public static final int IRQ_SET_ACTION_MASK = 8;
    public static final int IRQ_SET_ACTION_UNMASK = 16;
    public static final int IRQ_SET_ACTION_TRIGGER = 32;

    public static final int DMA_MAP_FLAG_READ = 1;
    public static final int DMA_MAP_FLAG_WRITE = 2;

    public static Map<String, Long> all() {
        return ALL;
    }

    private static final Map<String, Long> ALL = Map.ofEntries(
            Map.entry("VFIO_API_VERSION", (long) API_VERSION),
            Map.entry("VFIO_TYPE1_IOMMU", (long) TYPE1_IOMMU),
            Map.entry("VFIO_TYPE1v2_IOMMU", (long) TYPE1V2_IOMMU),
            Map.entry("VFIO_NOIOMMU_IOMMU", (long) NOIOMMU_IOMMU),
            Map.entry("VFIO_GROUP_FLAGS_VIABLE", (long) GROUP_FLAGS_VIABLE),
            Map.entry("VFIO_GROUP_FLAGS_CONTAINER_SET", (long) GROUP_FLAGS_CONTAINER_SET),
            Map.entry("VFIO_DEVICE_FLAGS_RESET", (long) DEVICE_FLAGS_RESET),
            Map.entry("VFIO_DEVICE_FLAGS_PCI", (long) DEVICE_FLAGS_PCI),
            Map.entry("VFIO_DEVICE_FLAGS_PLATFORM", (long) DEVICE_FLAGS_PLATFORM),
            Map.entry("VFIO_DEVICE_FLAGS_AMBA", (long) DEVICE_FLAGS_AMBA),
            Map.entry("VFIO_DEVICE_FLAGS_CAPS", (long) DEVICE_FLAGS_CAPS),
            Map.entry("VFIO_REGION_INFO_FLAG_READ", (long) REGION_INFO_FLAG_READ),
            Map.entry("VFIO_REGION_INFO_FLAG_WRITE", (long) REGION_INFO_FLAG_WRITE),
            Map.entry("VFIO_REGION_INFO_FLAG_MMAP", (long) REGION_INFO_FLAG_MMAP),
            Map.entry("VFIO_REGION_INFO_FLAG_CAPS", (long) REGION_INFO_FLAG_CAPS),
            Map.entry("VFIO_REGION_INFO_CAP_SPARSE_MMAP", (long) REGION_INFO_CAP_SPARSE_MMAP),
            Map.entry("VFIO_REGION_INFO_CAP_TYPE", (long) REGION_INFO_CAP_TYPE),
            Map.entry("VFIO_IRQ_INFO_EVENTFD", (long) IRQ_INFO_EVENTFD),
            Map.entry("VFIO_IRQ_INFO_MASKABLE", (long) IRQ_INFO_MASKABLE),
            Map.entry("VFIO_IRQ_INFO_AUTOMASKED", (long) IRQ_INFO_AUTOMASKED),
            Map.entry("VFIO_IRQ_INFO_NORESIZE", (long) IRQ_INFO_NORESIZE),
            Map.entry("VFIO_IRQ_SET_DATA_NONE", (long) IRQ_SET_DATA_NONE),
            Map.entry("VFIO_IRQ_SET_DATA_BOOL", (long) IRQ_SET_DATA_BOOL),
            Map.entry("VFIO_IRQ_SET_DATA_EVENTFD", (long) IRQ_SET_DATA_EVENTFD),
            Map.entry("VFIO_IRQ_SET_ACTION_MASK", (long) IRQ_SET_ACTION_MASK),
            Map.entry("VFIO_IRQ_SET_ACTION_UNMASK", (long) IRQ_SET_ACTION_UNMASK),
            Map.entry("VFIO_IRQ_SET_ACTION_TRIGGER", (long) IRQ_SET_ACTION_TRIGGER),
            Map.entry("VFIO_DMA_MAP_FLAG_READ", (long) DMA_MAP_FLAG_READ),
            Map.entry("VFIO_DMA_MAP_FLAG_WRITE", (long) DMA_MAP_FLAG_WRITE));
}
