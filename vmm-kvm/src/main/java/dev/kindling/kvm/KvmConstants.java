package dev.kindling.kvm;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/** Numeric constants of {@code <linux/kvm.h>} that Kindling uses, each declared once with its C name. */
public final class KvmConstants {
    private static final Map<String, Long> ALL = new LinkedHashMap<>();

    private KvmConstants() {}

    private static int c(String name, int value) {
        ALL.put(name, (long) value);
        return value;
    }

    public static final int API_VERSION = c("KVM_API_VERSION", 12);

    // kvm_run.exit_reason
    public static final int EXIT_UNKNOWN = c("KVM_EXIT_UNKNOWN", 0);
    public static final int EXIT_EXCEPTION = c("KVM_EXIT_EXCEPTION", 1);
    public static final int EXIT_IO = c("KVM_EXIT_IO", 2);
    public static final int EXIT_HYPERCALL = c("KVM_EXIT_HYPERCALL", 3);
    public static final int EXIT_DEBUG = c("KVM_EXIT_DEBUG", 4);
    public static final int EXIT_HLT = c("KVM_EXIT_HLT", 5);
    public static final int EXIT_MMIO = c("KVM_EXIT_MMIO", 6);
    public static final int EXIT_IRQ_WINDOW_OPEN = c("KVM_EXIT_IRQ_WINDOW_OPEN", 7);
    public static final int EXIT_SHUTDOWN = c("KVM_EXIT_SHUTDOWN", 8);
    public static final int EXIT_FAIL_ENTRY = c("KVM_EXIT_FAIL_ENTRY", 9);
    public static final int EXIT_INTR = c("KVM_EXIT_INTR", 10);
    public static final int EXIT_NMI = c("KVM_EXIT_NMI", 16);
    public static final int EXIT_INTERNAL_ERROR = c("KVM_EXIT_INTERNAL_ERROR", 17);
    public static final int EXIT_SYSTEM_EVENT = c("KVM_EXIT_SYSTEM_EVENT", 24);
    public static final int EXIT_IOAPIC_EOI = c("KVM_EXIT_IOAPIC_EOI", 26);

    public static final int EXIT_IO_IN = c("KVM_EXIT_IO_IN", 0);
    public static final int EXIT_IO_OUT = c("KVM_EXIT_IO_OUT", 1);

    public static final int INTERNAL_ERROR_EMULATION = c("KVM_INTERNAL_ERROR_EMULATION", 1);
    public static final int INTERNAL_ERROR_SIMUL_EX = c("KVM_INTERNAL_ERROR_SIMUL_EX", 2);
    public static final int INTERNAL_ERROR_DELIVERY_EV = c("KVM_INTERNAL_ERROR_DELIVERY_EV", 3);
    public static final int INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = c("KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON", 4);

    public static final int SYSTEM_EVENT_SHUTDOWN = c("KVM_SYSTEM_EVENT_SHUTDOWN", 1);
    public static final int SYSTEM_EVENT_RESET = c("KVM_SYSTEM_EVENT_RESET", 2);
    public static final int SYSTEM_EVENT_CRASH = c("KVM_SYSTEM_EVENT_CRASH", 3);

    // kvm_userspace_memory_region.flags
    public static final int MEM_LOG_DIRTY_PAGES = c("KVM_MEM_LOG_DIRTY_PAGES", 1);
    public static final int MEM_READONLY = c("KVM_MEM_READONLY", 2);

    public static final int IRQFD_FLAG_DEASSIGN = c("KVM_IRQFD_FLAG_DEASSIGN", 1);
    public static final int IRQFD_FLAG_RESAMPLE = c("KVM_IRQFD_FLAG_RESAMPLE", 2);

    public static final int IOEVENTFD_FLAG_DATAMATCH = c("KVM_IOEVENTFD_FLAG_DATAMATCH", 1);
    public static final int IOEVENTFD_FLAG_PIO = c("KVM_IOEVENTFD_FLAG_PIO", 2);
    public static final int IOEVENTFD_FLAG_DEASSIGN = c("KVM_IOEVENTFD_FLAG_DEASSIGN", 4);

    public static final int IRQ_ROUTING_IRQCHIP = c("KVM_IRQ_ROUTING_IRQCHIP", 1);
    public static final int IRQ_ROUTING_MSI = c("KVM_IRQ_ROUTING_MSI", 2);

    public static final int IRQCHIP_PIC_MASTER = c("KVM_IRQCHIP_PIC_MASTER", 0);
    public static final int IRQCHIP_PIC_SLAVE = c("KVM_IRQCHIP_PIC_SLAVE", 1);
    public static final int IRQCHIP_IOAPIC = c("KVM_IRQCHIP_IOAPIC", 2);

    public static final int PIT_SPEAKER_DUMMY = c("KVM_PIT_SPEAKER_DUMMY", 1);

    public static final int CLOCK_TSC_STABLE = c("KVM_CLOCK_TSC_STABLE", 2);
    public static final int CLOCK_REALTIME = c("KVM_CLOCK_REALTIME", 4);
    public static final int CLOCK_HOST_TSC = c("KVM_CLOCK_HOST_TSC", 8);

    public static final int APIC_REG_SIZE = c("KVM_APIC_REG_SIZE", 0x400);
    public static final int PIO_PAGE_OFFSET = c("KVM_PIO_PAGE_OFFSET", 1);

    /** Every constant above by its C name, for the test that compares them with the header. */
    public static Map<String, Long> all() {
        return Collections.unmodifiableMap(ALL);
    }
}
