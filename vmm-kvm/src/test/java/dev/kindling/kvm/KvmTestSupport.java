package dev.kindling.kvm;

import dev.kindling.memory.MemoryRegion;
import dev.kindling.sys.SyscallException;
import dev.kindling.testing.Require;
import java.lang.foreign.MemorySegment;

/** Opening KVM (or skipping with the reason) and setting up tiny real-mode guests. */
final class KvmTestSupport {
    static final long CODE = 0x1000;
    static final long RAM_SIZE = 0x4000;

    private KvmTestSupport() {}

    static Kvm openKvm() {
        try {
            return Kvm.open();
        } catch (SyscallException | UnsupportedOperationException e) {
            return Require.unavailable("KVM is not usable here: " + e.getMessage(), e);
        }
    }

    /** 16 KiB of RAM at guest address 0 with {@code code} at {@link #CODE}, in slot 0. */
    static MemoryRegion ramWithCode(Vm vm, byte[] code) {
        MemoryRegion ram = MemoryRegion.anonymous(0, RAM_SIZE);
        ram.segment().asSlice(CODE, code.length).copyFrom(MemorySegment.ofArray(code));
        vm.setUserMemoryRegion(0, ram);
        return ram;
    }

    /** Real mode, CS base 0, starting at {@link #CODE}. */
    static void startRealMode(Vcpu vcpu, long rax, long rbx) {
        Sregs sregs = vcpu.getSregs();
        vcpu.setSregs(sregs.withCs(sregs.cs().withBase(0).withSelector(0)));
        vcpu.setRegs(Regs.INITIAL.withRip(CODE).withRax(rax).withRbx(rbx));
    }

    static byte[] bytes(int... b) {
        byte[] out = new byte[b.length];
        for (int i = 0; i < b.length; i++) {
            out[i] = (byte) b[i];
        }
        return out;
    }
}
