package dev.kindling.kvm;

import java.util.Map;

/** Numeric constants of {@code <linux/kvm.h>} that Kindling uses, each with its C name in {@link #all()}. */
public final class KvmConstants {
    private KvmConstants() {}

    public static final int API_VERSION = 12;

    // kvm_run.exit_reason
    public static final int EXIT_UNKNOWN = 0;
    public static final int EXIT_EXCEPTION = 1;
    public static final int EXIT_IO = 2;
    public static final int EXIT_HYPERCALL = 3;
    public static final int EXIT_DEBUG = 4;
    public static final int EXIT_HLT = 5;
    public static final int EXIT_MMIO = 6;
    public static final int EXIT_IRQ_WINDOW_OPEN = 7;
    public static final int EXIT_SHUTDOWN = 8;
    public static final int EXIT_FAIL_ENTRY = 9;
    public static final int EXIT_INTR = 10;
    public static final int EXIT_NMI = 16;
    public static final int EXIT_INTERNAL_ERROR = 17;
    public static final int EXIT_SYSTEM_EVENT = 24;
    public static final int EXIT_IOAPIC_EOI = 26;

    public static final int EXIT_IO_IN = 0;
    public static final int EXIT_IO_OUT = 1;

    public static final int INTERNAL_ERROR_EMULATION = 1;
    public static final int INTERNAL_ERROR_SIMUL_EX = 2;
    public static final int INTERNAL_ERROR_DELIVERY_EV = 3;
    public static final int INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4;

    public static final int SYSTEM_EVENT_SHUTDOWN = 1;
    public static final int SYSTEM_EVENT_RESET = 2;
    public static final int SYSTEM_EVENT_CRASH = 3;

    // kvm_userspace_memory_region.flags
    public static final int MEM_LOG_DIRTY_PAGES = 1;
    public static final int MEM_READONLY = 2;

    public static final int IRQFD_FLAG_DEASSIGN = 1;
    public static final int IRQFD_FLAG_RESAMPLE = 2;

    public static final int IOEVENTFD_FLAG_DATAMATCH = 1;
    public static final int IOEVENTFD_FLAG_PIO = 2;
    public static final int IOEVENTFD_FLAG_DEASSIGN = 4;

    public static final int IRQ_ROUTING_IRQCHIP = 1;
    public static final int IRQ_ROUTING_MSI = 2;

    public static final int IRQCHIP_PIC_MASTER = 0;
    public static final int IRQCHIP_PIC_SLAVE = 1;
    public static final int IRQCHIP_IOAPIC = 2;

    public static final int PIT_SPEAKER_DUMMY = 1;

    public static final int CLOCK_TSC_STABLE = 2;
    public static final int CLOCK_REALTIME = 4;
    public static final int CLOCK_HOST_TSC = 8;

    public static final int APIC_REG_SIZE = 0x400;
    public static final int PIO_PAGE_OFFSET = 1;

    public static final int CREATE_DEVICE_TEST = 1;
    public static final int DEV_TYPE_VFIO = 4;
    public static final int DEV_VFIO_GROUP = 1;
    public static final int DEV_VFIO_GROUP_ADD = 1;
    public static final int DEV_VFIO_GROUP_DEL = 2;

    /** Every constant above by its C name, for the test that compares them with the header. */
    public static Map<String, Long> all() {
        return ALL;
    }

    // Listed separately so the fields stay compile-time constants (usable as switch labels).
    private static final Map<String, Long> ALL = Map.ofEntries(
                Map.entry("KVM_API_VERSION", (long) API_VERSION),
                Map.entry("KVM_EXIT_UNKNOWN", (long) EXIT_UNKNOWN),
                Map.entry("KVM_EXIT_EXCEPTION", (long) EXIT_EXCEPTION),
                Map.entry("KVM_EXIT_IO", (long) EXIT_IO),
                Map.entry("KVM_EXIT_HYPERCALL", (long) EXIT_HYPERCALL),
                Map.entry("KVM_EXIT_DEBUG", (long) EXIT_DEBUG),
                Map.entry("KVM_EXIT_HLT", (long) EXIT_HLT),
                Map.entry("KVM_EXIT_MMIO", (long) EXIT_MMIO),
                Map.entry("KVM_EXIT_IRQ_WINDOW_OPEN", (long) EXIT_IRQ_WINDOW_OPEN),
                Map.entry("KVM_EXIT_SHUTDOWN", (long) EXIT_SHUTDOWN),
                Map.entry("KVM_EXIT_FAIL_ENTRY", (long) EXIT_FAIL_ENTRY),
                Map.entry("KVM_EXIT_INTR", (long) EXIT_INTR),
                Map.entry("KVM_EXIT_NMI", (long) EXIT_NMI),
                Map.entry("KVM_EXIT_INTERNAL_ERROR", (long) EXIT_INTERNAL_ERROR),
                Map.entry("KVM_EXIT_SYSTEM_EVENT", (long) EXIT_SYSTEM_EVENT),
                Map.entry("KVM_EXIT_IOAPIC_EOI", (long) EXIT_IOAPIC_EOI),
                Map.entry("KVM_EXIT_IO_IN", (long) EXIT_IO_IN),
                Map.entry("KVM_EXIT_IO_OUT", (long) EXIT_IO_OUT),
                Map.entry("KVM_INTERNAL_ERROR_EMULATION", (long) INTERNAL_ERROR_EMULATION),
                Map.entry("KVM_INTERNAL_ERROR_SIMUL_EX", (long) INTERNAL_ERROR_SIMUL_EX),
                Map.entry("KVM_INTERNAL_ERROR_DELIVERY_EV", (long) INTERNAL_ERROR_DELIVERY_EV),
                Map.entry("KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON", (long) INTERNAL_ERROR_UNEXPECTED_EXIT_REASON),
                Map.entry("KVM_SYSTEM_EVENT_SHUTDOWN", (long) SYSTEM_EVENT_SHUTDOWN),
                Map.entry("KVM_SYSTEM_EVENT_RESET", (long) SYSTEM_EVENT_RESET),
                Map.entry("KVM_SYSTEM_EVENT_CRASH", (long) SYSTEM_EVENT_CRASH),
                Map.entry("KVM_MEM_LOG_DIRTY_PAGES", (long) MEM_LOG_DIRTY_PAGES),
                Map.entry("KVM_MEM_READONLY", (long) MEM_READONLY),
                Map.entry("KVM_IRQFD_FLAG_DEASSIGN", (long) IRQFD_FLAG_DEASSIGN),
                Map.entry("KVM_IRQFD_FLAG_RESAMPLE", (long) IRQFD_FLAG_RESAMPLE),
                Map.entry("KVM_IOEVENTFD_FLAG_DATAMATCH", (long) IOEVENTFD_FLAG_DATAMATCH),
                Map.entry("KVM_IOEVENTFD_FLAG_PIO", (long) IOEVENTFD_FLAG_PIO),
                Map.entry("KVM_IOEVENTFD_FLAG_DEASSIGN", (long) IOEVENTFD_FLAG_DEASSIGN),
                Map.entry("KVM_IRQ_ROUTING_IRQCHIP", (long) IRQ_ROUTING_IRQCHIP),
                Map.entry("KVM_IRQ_ROUTING_MSI", (long) IRQ_ROUTING_MSI),
                Map.entry("KVM_IRQCHIP_PIC_MASTER", (long) IRQCHIP_PIC_MASTER),
                Map.entry("KVM_IRQCHIP_PIC_SLAVE", (long) IRQCHIP_PIC_SLAVE),
                Map.entry("KVM_IRQCHIP_IOAPIC", (long) IRQCHIP_IOAPIC),
                Map.entry("KVM_PIT_SPEAKER_DUMMY", (long) PIT_SPEAKER_DUMMY),
                Map.entry("KVM_CLOCK_TSC_STABLE", (long) CLOCK_TSC_STABLE),
                Map.entry("KVM_CLOCK_REALTIME", (long) CLOCK_REALTIME),
                Map.entry("KVM_CLOCK_HOST_TSC", (long) CLOCK_HOST_TSC),
                Map.entry("KVM_APIC_REG_SIZE", (long) APIC_REG_SIZE),
                Map.entry("KVM_PIO_PAGE_OFFSET", (long) PIO_PAGE_OFFSET),
                Map.entry("KVM_CREATE_DEVICE_TEST", (long) CREATE_DEVICE_TEST),
                Map.entry("KVM_DEV_TYPE_VFIO", (long) DEV_TYPE_VFIO),
                Map.entry("KVM_DEV_VFIO_GROUP", (long) DEV_VFIO_GROUP),
                Map.entry("KVM_DEV_VFIO_GROUP_ADD", (long) DEV_VFIO_GROUP_ADD),
                Map.entry("KVM_DEV_VFIO_GROUP_DEL", (long) DEV_VFIO_GROUP_DEL));
}
