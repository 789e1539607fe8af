package dev.kindling.boot;

/**
 * The state a boot vCPU starts in, independent of KVM: the KVM layer copies it into {@code kvm_regs} and
 * {@code kvm_sregs}. The segment registers hold what the hidden descriptor caches must contain, decoded from the
 * {@link BootGdt} descriptors that the configurators also write into guest memory, so that a guest reloading a
 * selector gets the same segment.
 *
 * @param regs  general registers, RIP and RFLAGS
 * @param cr0   CR0
 * @param cr3   CR3 (page-table root; 0 with paging off)
 * @param cr4   CR4
 * @param efer  IA32_EFER
 * @param gdt   GDTR
 * @param idt   IDTR
 * @param ldt   LDTR
 */
public record BootCpuState(Registers regs, long cr0, long cr3, long cr4, long efer, DescriptorTable gdt,
                           DescriptorTable idt, Segment cs, Segment ds, Segment es, Segment fs, Segment gs,
                           Segment ss, Segment tr, Segment ldt) {
    public static final long CR0_PE = 1L;
    public static final long CR0_ET = 1L << 4;
    public static final long CR0_PG = 1L << 31;
    public static final long CR4_PAE = 1L << 5;
    public static final long EFER_LME = 1L << 8;
    public static final long EFER_LMA = 1L << 10;
    /** RFLAGS with only the always-one bit 1: interrupts off. */
    public static final long RFLAGS_DEFAULT = 0x2;

    /** The general registers; all others are zero. */
    public record Registers(long rax, long rbx, long rcx, long rdx, long rsi, long rdi, long rsp, long rbp, long rip,
                            long rflags) {
        public Registers withRip(long v) {
            return new Registers(rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, v, rflags);
        }

        public Registers withRsp(long v) {
            return new Registers(rax, rbx, rcx, rdx, rsi, rdi, v, rbp, rip, rflags);
        }

        public Registers withRsi(long v) {
            return new Registers(rax, rbx, rcx, rdx, v, rdi, rsp, rbp, rip, rflags);
        }

        public Registers withRbx(long v) {
            return new Registers(rax, v, rcx, rdx, rsi, rdi, rsp, rbp, rip, rflags);
        }
    }

    /** GDTR or IDTR: base and limit (size - 1). */
    public record DescriptorTable(long base, int limit) {
    }

    /**
     * A segment register with its descriptor cache, in the shape of {@code struct kvm_segment}.
     *
     * @param base     segment base
     * @param limit    byte-granular limit (a 4 KiB-granular descriptor limit of 0xfffff is 0xffffffff), unsigned 32 bits
     * @param selector the selector (GDT index * 8)
     * @param type     the 4-bit descriptor type (0xb: code execute/read accessed, or busy TSS; 0x3: data read/write accessed)
     * @param present  P
     * @param dpl      descriptor privilege level
     * @param db       D/B: 32-bit default operand size
     * @param s        S: code or data (true), system (false)
     * @param l        L: 64-bit code
     * @param g        G: 4 KiB limit granularity
     * @param avl      AVL
     * @param unusable no valid segment loaded (KVM's "unusable")
     */
    public record Segment(long base, long limit, int selector, int type, boolean present, int dpl, boolean db,
                          boolean s, boolean l, boolean g, boolean avl, boolean unusable) {
        /** LDTR as after reset: selector 0, an LDT of 64 KiB at 0, present (KVM's reset value). */
        public static Segment resetLdt() {
            return new Segment(0, 0xffff, 0, 2, true, 0, false, false, false, false, false, false);
        }
    }

    /**
     * 32-bit protected mode with paging off, the state the PVH ABI prescribes: CR0.PE (and ET), CR4 = 0,
     * EFER = 0; flat 4 GiB code (selector 0x08) and data (0x18) segments; TR a busy 32-bit TSS at 0 with
     * limit 0x67; EIP = {@code entry}, EBX = {@code ebx}, ESP = {@link MicrovmLayout#BOOT_STACK_POINTER},
     * interrupts off.
     */
    public static BootCpuState protectedMode32(long entry, long ebx) {
        checkU32(entry, "entry");
        checkU32(ebx, "EBX");
        Segment data = BootGdt.segment(BootGdt.DATA_SELECTOR);
        Registers r = new Registers(0, ebx, 0, 0, 0, 0, MicrovmLayout.BOOT_STACK_POINTER, 0, entry, RFLAGS_DEFAULT);
        return new BootCpuState(r, CR0_PE | CR0_ET, 0, 0, 0, BootGdt.gdtr(), BootGdt.idtr(),
                BootGdt.segment(BootGdt.CODE32_SELECTOR), data, data, data, data, data,
                BootGdt.segment(BootGdt.TSS_SELECTOR), Segment.resetLdt());
    }

    /**
     * 64-bit long mode as the Linux 64-bit boot protocol wants it: CR0.PE|PG (and ET), CR4.PAE, EFER.LME|LMA,
     * CR3 = {@code pageTablesAt}; CS = 0x10 (64-bit code), DS/ES/FS/GS/SS = 0x18 (flat data), TR 0x20;
     * RIP = {@code entry}, RSI = {@code rsi}, RSP = {@link MicrovmLayout#BOOT_STACK_POINTER}, interrupts off.
     * The page tables must identity-map the code, stack and data the guest touches first ({@link PageTables}).
     */
    public static BootCpuState longMode64(long entry, long rsi, long pageTablesAt) {
        if ((pageTablesAt & 0xfff) != 0) {
            throw new IllegalArgumentException("page tables at " + MicrovmLayout.hex(pageTablesAt) + " are not page-aligned");
        }
        Segment data = BootGdt.segment(BootGdt.DATA_SELECTOR);
        Registers r = new Registers(0, 0, 0, 0, rsi, 0, MicrovmLayout.BOOT_STACK_POINTER, 0, entry, RFLAGS_DEFAULT);
        return new BootCpuState(r, CR0_PE | CR0_ET | CR0_PG, pageTablesAt, CR4_PAE, EFER_LME | EFER_LMA,
                BootGdt.gdtr(), BootGdt.idtr(), BootGdt.segment(BootGdt.CODE64_SELECTOR), data, data, data, data, data,
                BootGdt.segment(BootGdt.TSS_SELECTOR), Segment.resetLdt());
    }

    /** True if this state is in long mode (EFER.LMA). */
    public boolean longMode() {
        return (efer & EFER_LMA) != 0;
    }

    /** The same state with other general registers. */
    public BootCpuState withRegs(Registers r) {
        return new BootCpuState(r, cr0, cr3, cr4, efer, gdt, idt, cs, ds, es, fs, gs, ss, tr, ldt);
    }

    private static void checkU32(long v, String what) {
        if (v < 0 || v > 0xffffffffL) {
            throw new IllegalArgumentException(what + " " + MicrovmLayout.hex(v) + " does not fit in 32 bits");
        }
    }
}
