package dev.kindling.kvm;

import dev.kindling.sys.Ioctl;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** Every KVM ioctl Kindling issues, declared once with the size of its argument struct (x86-64). */
public final class KvmIoctls {
    /** The ioctl type byte of KVM, {@code KVMIO}. */
    public static final int KVMIO = 0xAE;

    private static final List<Ioctl> ALL = new ArrayList<>();

    private KvmIoctls() {}

    private static Ioctl add(Ioctl ioctl) {
        ALL.add(ioctl);
        return ioctl;
    }

    private static Ioctl io(String name, int nr) {
        return add(Ioctl.io(name, KVMIO, nr));
    }

    private static Ioctl ior(String name, int nr, long size) {
        return add(Ioctl.ior(name, KVMIO, nr, size));
    }

    private static Ioctl iow(String name, int nr, long size) {
        return add(Ioctl.iow(name, KVMIO, nr, size));
    }

    private static Ioctl iowr(String name, int nr, long size) {
        return add(Ioctl.iowr(name, KVMIO, nr, size));
    }

    // /dev/kvm
    public static final Ioctl KVM_GET_API_VERSION = io("KVM_GET_API_VERSION", 0x00);
    public static final Ioctl KVM_CREATE_VM = io("KVM_CREATE_VM", 0x01);
    public static final Ioctl KVM_GET_MSR_INDEX_LIST = iowr("KVM_GET_MSR_INDEX_LIST", 0x02, KvmStructs.KVM_MSR_LIST.byteSize());
    public static final Ioctl KVM_CHECK_EXTENSION = io("KVM_CHECK_EXTENSION", 0x03);
    public static final Ioctl KVM_GET_VCPU_MMAP_SIZE = io("KVM_GET_VCPU_MMAP_SIZE", 0x04);
    public static final Ioctl KVM_GET_SUPPORTED_CPUID = iowr("KVM_GET_SUPPORTED_CPUID", 0x05, KvmStructs.KVM_CPUID2.byteSize());

    // VM
    public static final Ioctl KVM_CREATE_VCPU = io("KVM_CREATE_VCPU", 0x41);
    public static final Ioctl KVM_SET_USER_MEMORY_REGION =
            iow("KVM_SET_USER_MEMORY_REGION", 0x46, KvmStructs.KVM_USERSPACE_MEMORY_REGION.byteSize());
    public static final Ioctl KVM_SET_TSS_ADDR = io("KVM_SET_TSS_ADDR", 0x47);
    public static final Ioctl KVM_SET_IDENTITY_MAP_ADDR = iow("KVM_SET_IDENTITY_MAP_ADDR", 0x48, Long.BYTES);
    public static final Ioctl KVM_CREATE_IRQCHIP = io("KVM_CREATE_IRQCHIP", 0x60);
    public static final Ioctl KVM_IRQ_LINE = iow("KVM_IRQ_LINE", 0x61, KvmStructs.KVM_IRQ_LEVEL.byteSize());
    public static final Ioctl KVM_SET_GSI_ROUTING = iow("KVM_SET_GSI_ROUTING", 0x6a, KvmStructs.KVM_IRQ_ROUTING.byteSize());
    public static final Ioctl KVM_IRQFD = iow("KVM_IRQFD", 0x76, KvmStructs.KVM_IRQFD.byteSize());
    public static final Ioctl KVM_CREATE_PIT2 = iow("KVM_CREATE_PIT2", 0x77, KvmStructs.KVM_PIT_CONFIG.byteSize());
    public static final Ioctl KVM_IOEVENTFD = iow("KVM_IOEVENTFD", 0x79, KvmStructs.KVM_IOEVENTFD.byteSize());
    public static final Ioctl KVM_SET_CLOCK = iow("KVM_SET_CLOCK", 0x7b, KvmStructs.KVM_CLOCK_DATA.byteSize());
    public static final Ioctl KVM_GET_CLOCK = ior("KVM_GET_CLOCK", 0x7c, KvmStructs.KVM_CLOCK_DATA.byteSize());
    public static final Ioctl KVM_GET_IRQCHIP = iowr("KVM_GET_IRQCHIP", 0x62, KvmStructs.KVM_IRQCHIP.byteSize());
    public static final Ioctl KVM_SET_IRQCHIP = ior("KVM_SET_IRQCHIP", 0x63, KvmStructs.KVM_IRQCHIP.byteSize());
    public static final Ioctl KVM_GET_PIT2 = ior("KVM_GET_PIT2", 0x9f, KvmStructs.KVM_PIT_STATE2.byteSize());
    public static final Ioctl KVM_SET_PIT2 = iow("KVM_SET_PIT2", 0xa0, KvmStructs.KVM_PIT_STATE2.byteSize());
    public static final Ioctl KVM_SIGNAL_MSI = iow("KVM_SIGNAL_MSI", 0xa5, KvmStructs.KVM_MSI.byteSize());
    public static final Ioctl KVM_CREATE_DEVICE = iowr("KVM_CREATE_DEVICE", 0xe0, KvmStructs.KVM_CREATE_DEVICE.byteSize());

    // device fds of KVM_CREATE_DEVICE
    public static final Ioctl KVM_SET_DEVICE_ATTR = iow("KVM_SET_DEVICE_ATTR", 0xe1, KvmStructs.KVM_DEVICE_ATTR.byteSize());

    // VM and vCPU
    public static final Ioctl KVM_ENABLE_CAP = iow("KVM_ENABLE_CAP", 0xa3, KvmStructs.KVM_ENABLE_CAP.byteSize());

    // vCPU
    public static final Ioctl KVM_RUN = io("KVM_RUN", 0x80);
    public static final Ioctl KVM_GET_REGS = ior("KVM_GET_REGS", 0x81, KvmStructs.KVM_REGS.byteSize());
    public static final Ioctl KVM_SET_REGS = iow("KVM_SET_REGS", 0x82, KvmStructs.KVM_REGS.byteSize());
    public static final Ioctl KVM_GET_SREGS = ior("KVM_GET_SREGS", 0x83, KvmStructs.KVM_SREGS.byteSize());
    public static final Ioctl KVM_SET_SREGS = iow("KVM_SET_SREGS", 0x84, KvmStructs.KVM_SREGS.byteSize());
    public static final Ioctl KVM_INTERRUPT = iow("KVM_INTERRUPT", 0x86, KvmStructs.KVM_INTERRUPT.byteSize());
    public static final Ioctl KVM_GET_MSRS = iowr("KVM_GET_MSRS", 0x88, KvmStructs.KVM_MSRS.byteSize());
    public static final Ioctl KVM_SET_MSRS = iow("KVM_SET_MSRS", 0x89, KvmStructs.KVM_MSRS.byteSize());
    public static final Ioctl KVM_GET_FPU = ior("KVM_GET_FPU", 0x8c, KvmStructs.KVM_FPU.byteSize());
    public static final Ioctl KVM_SET_FPU = iow("KVM_SET_FPU", 0x8d, KvmStructs.KVM_FPU.byteSize());
    public static final Ioctl KVM_GET_LAPIC = ior("KVM_GET_LAPIC", 0x8e, KvmStructs.KVM_LAPIC_STATE.byteSize());
    public static final Ioctl KVM_SET_LAPIC = iow("KVM_SET_LAPIC", 0x8f, KvmStructs.KVM_LAPIC_STATE.byteSize());
    public static final Ioctl KVM_SET_CPUID2 = iow("KVM_SET_CPUID2", 0x90, KvmStructs.KVM_CPUID2.byteSize());
    public static final Ioctl KVM_GET_CPUID2 = iowr("KVM_GET_CPUID2", 0x91, KvmStructs.KVM_CPUID2.byteSize());
    public static final Ioctl KVM_GET_MP_STATE = ior("KVM_GET_MP_STATE", 0x98, KvmStructs.KVM_MP_STATE.byteSize());
    public static final Ioctl KVM_SET_MP_STATE = iow("KVM_SET_MP_STATE", 0x99, KvmStructs.KVM_MP_STATE.byteSize());
    public static final Ioctl KVM_NMI = io("KVM_NMI", 0x9a);

    public static final Ioctl KVM_GET_VCPU_EVENTS = ior("KVM_GET_VCPU_EVENTS", 0x9f, KvmStructs.KVM_VCPU_EVENTS.byteSize());
    public static final Ioctl KVM_SET_VCPU_EVENTS = iow("KVM_SET_VCPU_EVENTS", 0xa0, KvmStructs.KVM_VCPU_EVENTS.byteSize());
    public static final Ioctl KVM_GET_DEBUGREGS = ior("KVM_GET_DEBUGREGS", 0xa1, KvmStructs.KVM_DEBUGREGS.byteSize());
    public static final Ioctl KVM_SET_DEBUGREGS = iow("KVM_SET_DEBUGREGS", 0xa2, KvmStructs.KVM_DEBUGREGS.byteSize());
    public static final Ioctl KVM_GET_XSAVE = ior("KVM_GET_XSAVE", 0xa4, KvmStructs.KVM_XSAVE.byteSize());
    public static final Ioctl KVM_SET_XSAVE = iow("KVM_SET_XSAVE", 0xa5, KvmStructs.KVM_XSAVE.byteSize());
    public static final Ioctl KVM_GET_XCRS = ior("KVM_GET_XCRS", 0xa6, KvmStructs.KVM_XCRS.byteSize());
    public static final Ioctl KVM_SET_XCRS = iow("KVM_SET_XCRS", 0xa7, KvmStructs.KVM_XCRS.byteSize());
    public static final Ioctl KVM_GET_XSAVE2 = ior("KVM_GET_XSAVE2", 0xcf, KvmStructs.KVM_XSAVE.byteSize());

    /** Every ioctl above, for the test that compares them with the header's macros. */
    public static List<Ioctl> all() {
        return Collections.unmodifiableList(ALL);
    }
}
