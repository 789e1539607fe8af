package dev.kindling.kvm;

import static dev.kindling.kvm.KvmStructs.KVM_RUN;
import static dev.kindling.sys.CLayouts.offsetOf;

import dev.kindling.sys.CLayouts;

/** Offsets into {@code struct kvm_run}, computed once from {@link KvmStructs#KVM_RUN}. */
final class KvmRun {
    private static final String EXIT = CLayouts.ANONYMOUS_PREFIX + "exit";

    static final long REQUEST_INTERRUPT_WINDOW = offsetOf(KVM_RUN, "request_interrupt_window");
    static final long IMMEDIATE_EXIT = offsetOf(KVM_RUN, "immediate_exit");
    static final long EXIT_REASON = offsetOf(KVM_RUN, "exit_reason");
    static final long READY_FOR_INTERRUPT_INJECTION = offsetOf(KVM_RUN, "ready_for_interrupt_injection");
    static final long IF_FLAG = offsetOf(KVM_RUN, "if_flag");
    static final long CR8 = offsetOf(KVM_RUN, "cr8");
    static final long APIC_BASE = offsetOf(KVM_RUN, "apic_base");

    static final long HW_EXIT_REASON = offsetOf(KVM_RUN, EXIT, "hw", "hardware_exit_reason");
    static final long FAIL_ENTRY_REASON = offsetOf(KVM_RUN, EXIT, "fail_entry", "hardware_entry_failure_reason");
    static final long FAIL_ENTRY_CPU = offsetOf(KVM_RUN, EXIT, "fail_entry", "cpu");
    static final long EX_EXCEPTION = offsetOf(KVM_RUN, EXIT, "ex", "exception");
    static final long EX_ERROR_CODE = offsetOf(KVM_RUN, EXIT, "ex", "error_code");
    static final long IO_DIRECTION = offsetOf(KVM_RUN, EXIT, "io", "direction");
    static final long IO_SIZE = offsetOf(KVM_RUN, EXIT, "io", "size");
    static final long IO_PORT = offsetOf(KVM_RUN, EXIT, "io", "port");
    static final long IO_COUNT = offsetOf(KVM_RUN, EXIT, "io", "count");
    static final long IO_DATA_OFFSET = offsetOf(KVM_RUN, EXIT, "io", "data_offset");
    static final long MMIO_PHYS_ADDR = offsetOf(KVM_RUN, EXIT, "mmio", "phys_addr");
    static final long MMIO_DATA = offsetOf(KVM_RUN, EXIT, "mmio", "data");
    static final long MMIO_LEN = offsetOf(KVM_RUN, EXIT, "mmio", "len");
    static final long MMIO_IS_WRITE = offsetOf(KVM_RUN, EXIT, "mmio", "is_write");
    static final long INTERNAL_SUBERROR = offsetOf(KVM_RUN, EXIT, "internal", "suberror");
    static final long INTERNAL_NDATA = offsetOf(KVM_RUN, EXIT, "internal", "ndata");
    static final long INTERNAL_DATA = offsetOf(KVM_RUN, EXIT, "internal", "data");
    static final long SYSTEM_EVENT_TYPE = offsetOf(KVM_RUN, EXIT, "system_event", "type");
    static final long SYSTEM_EVENT_NDATA = offsetOf(KVM_RUN, EXIT, "system_event", "ndata");
    static final long SYSTEM_EVENT_DATA =
            offsetOf(KVM_RUN, EXIT, "system_event", CLayouts.ANONYMOUS_PREFIX + "data", "data");
    static final long EOI_VECTOR = offsetOf(KVM_RUN, EXIT, "eoi", "vector");

    /** Capacity of the internal-error and system-event data arrays. */
    static final int MAX_DATA = 16;

    private KvmRun() {}
}
