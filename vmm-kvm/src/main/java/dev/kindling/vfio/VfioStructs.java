package dev.kindling.vfio;

import static dev.kindling.sys.CLayouts.*;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** The structures of {@code <linux/vfio.h>} (x86-64) that Kindling passes to the kernel, each declared once. */
public final class VfioStructs {
    private static final List<StructLayout> ALL = new ArrayList<>();

    private VfioStructs() {}

    private static StructLayout register(String name, MemoryLayout... members) {
        StructLayout layout = struct(name, members);
        ALL.add(layout);
        return layout;
    }

    public static final StructLayout VFIO_INFO_CAP_HEADER = register("vfio_info_cap_header",
            u16("id"), u16("version"), u32("next"));

    public static final StructLayout VFIO_GROUP_STATUS = register("vfio_group_status", u32("argsz"), u32("flags"));

    public static final StructLayout VFIO_DEVICE_INFO = register("vfio_device_info",
            u32("argsz"), u32("flags"), u32("num_regions"), u32("num_irqs"), u32("cap_offset"));

    public static final StructLayout VFIO_REGION_INFO = register("vfio_region_info",
            u32("argsz"), u32("flags"), u32("index"), u32("cap_offset"), u64("size"), u64("offset"));

    public static final StructLayout VFIO_REGION_SPARSE_MMAP_AREA = register("vfio_region_sparse_mmap_area",
            u64("offset"), u64("size"));

    public static final StructLayout VFIO_REGION_INFO_CAP_SPARSE_MMAP = register("vfio_region_info_cap_sparse_mmap",
            VFIO_INFO_CAP_HEADER.withName("header"), u32("nr_areas"), u32("reserved"),
            flexible("areas", VFIO_REGION_SPARSE_MMAP_AREA));

    public static final StructLayout VFIO_REGION_INFO_CAP_TYPE = register("vfio_region_info_cap_type",
            VFIO_INFO_CAP_HEADER.withName("header"), u32("type"), u32("subtype"));

    public static final StructLayout VFIO_IRQ_INFO = register("vfio_irq_info",
            u32("argsz"), u32("flags"), u32("index"), u32("count"));

    public static final StructLayout VFIO_IRQ_SET = register("vfio_irq_set",
            u32("argsz"), u32("flags"), u32("index"), u32("start"), u32("count"), flexible("data", U8));

    public static final StructLayout VFIO_IOMMU_TYPE1_INFO = register("vfio_iommu_type1_info",
            u32("argsz"), u32("flags"), u64("iova_pgsizes"), u32("cap_offset"), pad(4));

    public static final StructLayout VFIO_IOMMU_TYPE1_DMA_MAP = register("vfio_iommu_type1_dma_map",
            u32("argsz"), u32("flags"), u64("vaddr"), u64("iova"), u64("size"));

    public static final StructLayout VFIO_IOMMU_TYPE1_DMA_UNMAP = register("vfio_iommu_type1_dma_unmap",
            u32("argsz"), u32("flags"), u64("iova"), u64("size"), flexible("data", U8));

    /** Every layout above, for the layout test. */
    public static List<StructLayout> all() {
        return Collections.unmodifiableList(ALL);
    }
}
