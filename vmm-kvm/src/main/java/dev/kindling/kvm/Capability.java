package dev.kindling.kvm;

/** The KVM extensions Kindling asks about; {@code KVM_CAP_} + the constant's name is the C macro. */
public enum Capability {
    IRQCHIP(0),
    HLT(1),
    USER_MEMORY(3),
    SET_TSS_ADDR(4),
    EXT_CPUID(7),
    CLOCKSOURCE(8),
    NR_VCPUS(9),
    NR_MEMSLOTS(10),
    PIT(11),
    NOP_IO_DELAY(12),
    MP_STATE(14),
    COALESCED_MMIO(15),
    SYNC_MMU(16),
    USER_NMI(22),
    IRQ_ROUTING(25),
    IRQ_INJECT_STATUS(26),
    IRQFD(32),
    PIT2(33),
    PIT_STATE2(35),
    IOEVENTFD(36),
    SET_IDENTITY_MAP_ADDR(37),
    ADJUST_CLOCK(39),
    INTERNAL_ERROR_DATA(40),
    VCPU_EVENTS(41),
    DEBUGREGS(50),
    ENABLE_CAP(54),
    XSAVE(55),
    XCRS(56),
    TSC_CONTROL(60),
    GET_TSC_KHZ(61),
    MAX_VCPUS(66),
    TSC_DEADLINE_TIMER(72),
    KVMCLOCK_CTRL(76),
    SIGNAL_MSI(77),
    READONLY_MEM(81),
    IRQFD_RESAMPLE(82),
    ENABLE_CAP_VM(98),
    IOEVENTFD_NO_LENGTH(100),
    CHECK_EXTENSION_VM(105),
    SPLIT_IRQCHIP(121),
    IOEVENTFD_ANY_LENGTH(122),
    MAX_VCPU_ID(128),
    X2APIC_API(129),
    IMMEDIATE_EXIT(136),
    X86_DISABLE_EXITS(143),
    GET_MSR_FEATURES(153),
    COALESCED_PIO(162),
    EXCEPTION_PAYLOAD(164),
    X86_USER_SPACE_MSR(188),
    SREGS2(200),
    XSAVE2(208),
    SYSTEM_EVENT_DATA(215),
    X86_TRIPLE_FAULT_EVENT(218);

    private final int number;

    Capability(int number) {
        this.number = number;
    }

    /** The {@code KVM_CAP_*} number passed to KVM_CHECK_EXTENSION and KVM_ENABLE_CAP. */
    public int number() {
        return number;
    }

    /** The C macro name, e.g. {@code KVM_CAP_IRQFD}. */
    public String macro() {
        return "KVM_CAP_" + name();
    }
}
