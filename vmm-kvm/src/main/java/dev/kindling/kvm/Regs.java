package dev.kindling.kvm;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.kindling.sys.CLayouts;
import java.lang.foreign.MemorySegment;

/** The general-purpose registers, {@code struct kvm_regs}. */
public record Regs(
        long rax, long rbx, long rcx, long rdx,
        long rsi, long rdi, long rsp, long rbp,
        long r8, long r9, long r10, long r11,
        long r12, long r13, long r14, long r15,
        long rip, long rflags) {

    /** All zero except rflags bit 1, which is always set on x86. */
    public static final Regs INITIAL = new Regs(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2);

    private static final String[] NAMES = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags"};
    private static final long[] OFFSETS = new long[NAMES.length];

    static {
        for (int i = 0; i < NAMES.length; i++) {
            OFFSETS[i] = CLayouts.offsetOf(KvmStructs.KVM_REGS, NAMES[i]);
        }
    }

    static Regs read(MemorySegment s) {
        long[] v = new long[NAMES.length];
        for (int i = 0; i < v.length; i++) {
            v[i] = s.get(JAVA_LONG, OFFSETS[i]);
        }
        return new Regs(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11],
                v[12], v[13], v[14], v[15], v[16], v[17]);
    }

    void write(MemorySegment s) {
        long[] v = {rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags};
        for (int i = 0; i < v.length; i++) {
            s.set(JAVA_LONG, OFFSETS[i], v[i]);
        }
    }

    public Regs withRax(long v) {
        return new Regs(v, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags);
    }

    public Regs withRbx(long v) {
        return new Regs(rax, v, rcx, rdx, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags);
    }

    public Regs withRcx(long v) {
        return new Regs(rax, rbx, v, rdx, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags);
    }

    public Regs withRdx(long v) {
        return new Regs(rax, rbx, rcx, v, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags);
    }

    public Regs withRsi(long v) {
        return new Regs(rax, rbx, rcx, rdx, v, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags);
    }

    public Regs withRdi(long v) {
        return new Regs(rax, rbx, rcx, rdx, rsi, v, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags);
    }

    public Regs withRsp(long v) {
        return new Regs(rax, rbx, rcx, rdx, rsi, rdi, v, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags);
    }

    public Regs withRbp(long v) {
        return new Regs(rax, rbx, rcx, rdx, rsi, rdi, rsp, v, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags);
    }

    public Regs withRip(long v) {
        return new Regs(rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, v, rflags);
    }

    public Regs withRflags(long v) {
        return new Regs(rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, v);
    }
}
