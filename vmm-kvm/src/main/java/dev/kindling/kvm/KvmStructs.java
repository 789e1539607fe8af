package dev.kindling.kvm;

import static dev.kindling.sys.CLayouts.*;

import dev.kindling.sys.CLayouts;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The C structures of {@code <linux/kvm.h>} (x86-64) that Kindling passes to the kernel, each declared
 * once with the names of {@link CLayouts}, so the layout test can check every offset against the header.
 */
public final class KvmStructs {
    private static final List<StructLayout> ALL = new ArrayList<>();

    private KvmStructs() {}

    private static StructLayout register(String name, MemoryLayout... members) {
        StructLayout layout = struct(name, members);
        ALL.add(layout);
        return layout;
    }

    public static final StructLayout KVM_USERSPACE_MEMORY_REGION = register("kvm_userspace_memory_region",
            u32("slot"), u32("flags"), u64("guest_phys_addr"), u64("memory_size"), u64("userspace_addr"));

    public static final StructLayout KVM_REGS = register("kvm_regs",
            u64("rax"), u64("rbx"), u64("rcx"), u64("rdx"),
            u64("rsi"), u64("rdi"), u64("rsp"), u64("rbp"),
            u64("r8"), u64("r9"), u64("r10"), u64("r11"),
            u64("r12"), u64("r13"), u64("r14"), u64("r15"),
            u64("rip"), u64("rflags"));

    public static final StructLayout KVM_SEGMENT = register("kvm_segment",
            u64("base"), u32("limit"), u16("selector"), u8("type"),
            u8("present"), u8("dpl"), u8("db"), u8("s"), u8("l"), u8("g"), u8("avl"),
            u8("unusable"), u8("padding"));

    public static final StructLayout KVM_DTABLE = register("kvm_dtable",
            u64("base"), u16("limit"), array("padding", 3, U16));

    public static final StructLayout KVM_SREGS = register("kvm_sregs",
            KVM_SEGMENT.withName("cs"), KVM_SEGMENT.withName("ds"), KVM_SEGMENT.withName("es"),
            KVM_SEGMENT.withName("fs"), KVM_SEGMENT.withName("gs"), KVM_SEGMENT.withName("ss"),
            KVM_SEGMENT.withName("tr"), KVM_SEGMENT.withName("ldt"),
            KVM_DTABLE.withName("gdt"), KVM_DTABLE.withName("idt"),
            u64("cr0"), u64("cr2"), u64("cr3"), u64("cr4"), u64("cr8"), u64("efer"), u64("apic_base"),
            array("interrupt_bitmap", 4, U64));

    public static final StructLayout KVM_FPU = register("kvm_fpu",
            array("fpr", 8, MemoryLayout.sequenceLayout(16, U8)),
            u16("fcw"), u16("fsw"), u8("ftwx"), u8("pad1"), u16("last_opcode"),
            u64("last_ip"), u64("last_dp"),
            array("xmm", 16, MemoryLayout.sequenceLayout(16, U8)),
            u32("mxcsr"), u32("pad2"));

    public static final StructLayout KVM_MSR_ENTRY = register("kvm_msr_entry",
            u32("index"), u32("reserved"), u64("data"));

    public static final StructLayout KVM_MSRS = register("kvm_msrs",
            u32("nmsrs"), u32("pad"), flexible("entries", KVM_MSR_ENTRY));

    public static final StructLayout KVM_MSR_LIST = register("kvm_msr_list",
            u32("nmsrs"), flexible("indices", U32));

    public static final StructLayout KVM_CPUID_ENTRY2 = register("kvm_cpuid_entry2",
            u32("function"), u32("index"), u32("flags"),
            u32("eax"), u32("ebx"), u32("ecx"), u32("edx"), array("padding", 3, U32));

    public static final StructLayout KVM_CPUID2 = register("kvm_cpuid2",
            u32("nent"), u32("padding"), flexible("entries", KVM_CPUID_ENTRY2));

    public static final StructLayout KVM_LAPIC_STATE = register("kvm_lapic_state",
            array("regs", 1024, U8));

    public static final StructLayout KVM_MP_STATE = register("kvm_mp_state", u32("mp_state"));

    public static final StructLayout KVM_IRQ_LEVEL = register("kvm_irq_level",
            union(ANONYMOUS_PREFIX + "irq", u32("irq"), u32("status")), u32("level"));

    public static final StructLayout KVM_INTERRUPT = register("kvm_interrupt", u32("irq"));

    public static final StructLayout KVM_IRQFD = register("kvm_irqfd",
            u32("fd"), u32("gsi"), u32("flags"), u32("resamplefd"), array("pad", 16, U8));

    public static final StructLayout KVM_IOEVENTFD = register("kvm_ioeventfd",
            u64("datamatch"), u64("addr"), u32("len"), u32("fd"), u32("flags"), array("pad", 36, U8));

    public static final StructLayout KVM_MSI = register("kvm_msi",
            u32("address_lo"), u32("address_hi"), u32("data"), u32("flags"), u32("devid"), array("pad", 12, U8));

    public static final StructLayout KVM_IRQ_ROUTING_IRQCHIP = register("kvm_irq_routing_irqchip",
            u32("irqchip"), u32("pin"));

    public static final StructLayout KVM_IRQ_ROUTING_MSI = register("kvm_irq_routing_msi",
            u32("address_lo"), u32("address_hi"), u32("data"),
            union(ANONYMOUS_PREFIX + "devid", u32("pad"), u32("devid")));

    public static final StructLayout KVM_IRQ_ROUTING_ENTRY = register("kvm_irq_routing_entry",
            u32("gsi"), u32("type"), u32("flags"), u32("pad"),
            union("u", KVM_IRQ_ROUTING_IRQCHIP.withName("irqchip"), KVM_IRQ_ROUTING_MSI.withName("msi"),
                    // s390's member, kept because its u64s make the entry 8-byte aligned in C
                    struct("adapter", u64("ind_addr"), u64("summary_addr"), u64("ind_offset"),
                            u32("summary_offset"), u32("adapter_id")),
                    array("pad", 8, U32)));

    public static final StructLayout KVM_IRQ_ROUTING = register("kvm_irq_routing",
            u32("nr"), u32("flags"), flexible("entries", KVM_IRQ_ROUTING_ENTRY));

    public static final StructLayout KVM_PIT_CONFIG = register("kvm_pit_config",
            u32("flags"), array("pad", 15, U32));

    public static final StructLayout KVM_CREATE_DEVICE = register("kvm_create_device",
            u32("type"), u32("fd"), u32("flags"));

    public static final StructLayout KVM_DEVICE_ATTR = register("kvm_device_attr",
            u32("flags"), u32("group"), u64("attr"), u64("addr"));

    public static final StructLayout KVM_ENABLE_CAP = register("kvm_enable_cap",
            u32("cap"), u32("flags"), array("args", 4, U64), array("pad", 64, U8));

    public static final StructLayout KVM_CLOCK_DATA = register("kvm_clock_data",
            u64("clock"), u32("flags"), u32("pad0"), u64("realtime"), u64("host_tsc"), array("pad", 4, U32));

    // ---- state that snapshots save and restore as opaque blocks

    public static final StructLayout KVM_XSAVE = register("kvm_xsave",
            array("region", 1024, U32), flexible("extra", U32));

    public static final StructLayout KVM_XCR = struct("kvm_xcr", u32("xcr"), u32("reserved"), u64("value"));

    public static final StructLayout KVM_XCRS = register("kvm_xcrs",
            u32("nr_xcrs"), u32("flags"), array("xcrs", 16, KVM_XCR), array("padding", 16, U64));

    public static final StructLayout KVM_VCPU_EVENTS = register("kvm_vcpu_events",
            struct("exception", u8("injected"), u8("nr"), u8("has_error_code"), u8("pending"), u32("error_code"))
                    .withName("exception"),
            struct("interrupt", u8("injected"), u8("nr"), u8("soft"), u8("shadow")).withName("interrupt"),
            struct("nmi", u8("injected"), u8("pending"), u8("masked"), u8("pad")).withName("nmi"),
            u32("sipi_vector"), u32("flags"),
            struct("smi", u8("smm"), u8("pending"), u8("smm_inside_nmi"), u8("latched_init")).withName("smi"),
            struct("triple_fault", u8("pending")).withName("triple_fault"),
            array("reserved", 26, U8), u8("exception_has_payload"), u64("exception_payload"));

    public static final StructLayout KVM_DEBUGREGS = register("kvm_debugregs",
            array("db", 4, U64), u64("dr6"), u64("dr7"), u64("flags"), array("reserved", 9, U64));

    /** chip_id 0 = PIC master, 1 = PIC slave, 2 = IOAPIC; the chip's state is kept opaque. */
    public static final StructLayout KVM_IRQCHIP = register("kvm_irqchip",
            u32("chip_id"), u32("pad"), union("chip", array("dummy", 512, U8), array("ioapic", 27, U64)));

    /** The three channels (struct kvm_pit_channel_state, 24 bytes each) kept opaque. */
    public static final StructLayout KVM_PIT_STATE2 = register("kvm_pit_state2",
            array("channels", 9, U64), u32("flags"), array("reserved", 9, U32));

    /** The shared page KVM_RUN reports exits through (offset 0 of the vCPU mmap). */
    public static final StructLayout KVM_RUN = register("kvm_run",
            u8("request_interrupt_window"), u8("immediate_exit"), array("padding1", 6, U8),
            u32("exit_reason"), u8("ready_for_interrupt_injection"), u8("if_flag"), u16("flags"),
            u64("cr8"), u64("apic_base"),
            union(ANONYMOUS_PREFIX + "exit",
                    struct("hw", u64("hardware_exit_reason")),
                    struct("fail_entry", u64("hardware_entry_failure_reason"), u32("cpu"), pad(4)),
                    struct("ex", u32("exception"), u32("error_code")),
                    struct("io", u8("direction"), u8("size"), u16("port"), u32("count"), u64("data_offset")),
                    struct("mmio", u64("phys_addr"), array("data", 8, U8), u32("len"), u8("is_write"), pad(3)),
                    struct("internal", u32("suberror"), u32("ndata"), array("data", 16, U64)),
                    struct("system_event", u32("type"), u32("ndata"),
                            union(ANONYMOUS_PREFIX + "data", u64("flags"), array("data", 16, U64))),
                    struct("eoi", u8("vector")),
                    array("padding", 256, U8)),
            u64("kvm_valid_regs"), u64("kvm_dirty_regs"),
            array("s", 2048, U8));

    /** Every top-level layout above, for the layout test. */
    public static List<StructLayout> all() {
        return Collections.unmodifiableList(ALL);
    }
}
