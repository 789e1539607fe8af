package dev.kindling.kvm.platform;

import dev.kindling.boot.BootCpuState;
import dev.kindling.kvm.DescriptorTable;
import dev.kindling.kvm.Fpu;
import dev.kindling.kvm.KvmConstants;
import dev.kindling.kvm.MpState;
import dev.kindling.kvm.Regs;
import dev.kindling.kvm.Segment;
import dev.kindling.kvm.Sregs;
import dev.kindling.kvm.Vcpu;
import dev.kindling.kvm.VcpuExit;
import dev.kindling.machine.ExitDispatch;
import dev.kindling.machine.StopReason;
import dev.kindling.machine.VcpuEvent;
import dev.kindling.machine.VirtualCpu;
import dev.kindling.kvm.LapicState;
import dev.kindling.kvm.Msr;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.sys.SyscallException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * A {@link VirtualCpu} on a KVM vCPU: runs KVM_RUN, sends port and MMIO exits to the machine's
 * {@link ExitDispatch} and turns the exits that end a machine into a {@link StopReason}.
 */
final class KvmVirtualCpu implements VirtualCpu {
    private final Vcpu vcpu;
    /** Shared by the machine's vCPUs, so that each failing device is logged once per machine. */
    private final ExitDispatch exits;
    private final IntConsumer eoi;
    private volatile ExternalInterrupts pic;

    /** KVM_CAP_XSAVE2's size of the XSAVE area (0 or 4096 for the legacy struct). */
    private final int xsaveSize;
    /** KVM_GET_MSR_INDEX_LIST: the MSRs a snapshot tries to save. */
    private final int[] msrIndices;

    KvmVirtualCpu(Vcpu vcpu, ExitDispatch exits, IntConsumer eoi, int xsaveSize, int[] msrIndices) {
        this.vcpu = vcpu;
        this.xsaveSize = xsaveSize;
        this.msrIndices = msrOrder(msrIndices);
        this.exits = exits;
        this.eoi = eoi;
    }

    Vcpu vcpu() {
        return vcpu;
    }

    void connectPic(ExternalInterrupts pic) {
        this.pic = pic;
    }

    @Override
    public int index() {
        return vcpu.id();
    }

    /** Sets the entry state and makes the vCPU runnable (an AP would otherwise wait for INIT/SIPI). */
    @Override
    public void setBootState(BootCpuState s) {
        Sregs cur = vcpu.getSregs();
        vcpu.setSregs(new Sregs(segment(s.cs()), segment(s.ds()), segment(s.es()), segment(s.fs()), segment(s.gs()),
                segment(s.ss()), segment(s.tr()), segment(s.ldt()), table(s.gdt()), table(s.idt()),
                s.cr0(), cur.cr2(), s.cr3(), s.cr4(), cur.cr8(), s.efer(), cur.apicBase(), cur.interruptBitmap()));
        BootCpuState.Registers r = s.regs();
        vcpu.setRegs(new Regs(r.rax(), r.rbx(), r.rcx(), r.rdx(), r.rsi(), r.rdi(), r.rsp(), r.rbp(),
                0, 0, 0, 0, 0, 0, 0, 0, r.rip(), r.rflags()));
        vcpu.setFpu(Fpu.INITIAL);
        vcpu.setMpState(MpState.RUNNABLE);
    }

    private static DescriptorTable table(BootCpuState.DescriptorTable t) {
        return new DescriptorTable(t.base(), t.limit());
    }

    private static Segment segment(BootCpuState.Segment s) {
        return new Segment(s.base(), (int) s.limit(), s.selector(), s.type(), s.present(), s.dpl(), s.db(), s.s(),
                s.l(), s.g(), s.avl(), s.unusable());
    }

    /** Snapshot format of one vCPU; a restore refuses any other. */
    private static final int STATE_VERSION = 1;
    private static final int MSR_IA32_TSC = 0x10, MSR_IA32_TSC_DEADLINE = 0x6e0;
    /** Enough for any MSR index list KVM reports (a few hundred today). */
    private static final int MAX_MSRS = 4096;
    private static final int MAX_XSAVE = 1 << 20;

    /**
     * The index list with MSR_IA32_TSC_DEADLINE moved to the end: KVM interprets the deadline against the
     * guest TSC, so it must be set after MSR_IA32_TSC (Firecracker and QEMU restore it last too).
     */
    private static int[] msrOrder(int[] indices) {
        int[] out = new int[indices.length];
        int n = 0;
        boolean deadline = false;
        for (int m : indices) {
            if (m == MSR_IA32_TSC_DEADLINE) {
                deadline = true;
            } else {
                out[n++] = m;
            }
        }
        if (deadline) {
            out[n++] = MSR_IA32_TSC_DEADLINE;
        }
        return Arrays.copyOf(out, n);
    }

    /**
     * Saves in Firecracker's order: MP state, regs, sregs, XSAVE, XCRs, debug registers, LAPIC, MSRs,
     * vCPU events. The vCPU ioctls other than KVM_RUN may come from any thread (KVM takes the vCPU's
     * mutex), so this runs on the pausing thread while the vCPU thread is parked outside KVM_RUN.
     */
    @Override
    public void saveState(StateWriter out) {
        out.putInt(STATE_VERSION);
        out.putInt(vcpu.getMpState().value());
        out.putBytes(vcpu.getRegsBytes());
        out.putBytes(vcpu.getSregsBytes());
        out.putBytes(vcpu.getXsave(xsaveSize));
        out.putBytes(vcpu.getXcrs());
        out.putBytes(vcpu.getDebugRegs());
        out.putBytes(vcpu.getLapic().toBytes());
        List<Msr> msrs = readableMsrs();
        out.putInt(msrs.size());
        for (Msr m : msrs) {
            out.putInt(m.index());
            out.putLong(m.value());
        }
        out.putBytes(vcpu.getVcpuEvents());
    }

    /**
     * Every MSR of the index list that KVM_GET_MSRS reads. KVM stops at the first MSR it cannot read (one
     * the list names but this vCPU's CPUID does not enable): that one is skipped and the rest read on.
     */
    private List<Msr> readableMsrs() {
        List<Msr> all = new ArrayList<>(msrIndices.length);
        int from = 0;
        while (from < msrIndices.length) {
            int[] rest = Arrays.copyOfRange(msrIndices, from, msrIndices.length);
            List<Msr> got = vcpu.getMsrsPrefix(rest);
            all.addAll(got);
            from += got.size() + 1; // past the one KVM refused (or past the end)
        }
        return List.copyOf(all);
    }

    @Override
    public void restoreState(StateReader in) {
        in.getInt("vcpu state version", STATE_VERSION, STATE_VERSION);
        int mp = in.getInt("mp_state", 0, 8);
        byte[] regs = in.getBytes();
        byte[] sregs = in.getBytes();
        byte[] xsave = in.getBytes();
        byte[] xcrs = in.getBytes();
        byte[] debugRegs = in.getBytes();
        byte[] lapic = in.getBytes();
        int n = in.getInt("MSR count", 0, MAX_MSRS);
        List<Msr> msrs = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            msrs.add(new Msr(in.getInt(), in.getLong()));
        }
        byte[] events = in.getBytes();
        in.expectEnd();
        if (xsave.length < Vcpu.XSAVE_SIZE || xsave.length > MAX_XSAVE || xsave.length != Math.max(xsaveSize, Vcpu.XSAVE_SIZE)) {
            throw in.bad("the XSAVE area is " + xsave.length + " bytes, this host's is " + Math.max(xsaveSize, Vcpu.XSAVE_SIZE));
        }
        if (lapic.length != LapicState.SIZE) {
            throw in.bad("the LAPIC state is " + lapic.length + " bytes, not " + LapicState.SIZE);
        }
        try {
            vcpu.setMpState(MpState.of(mp));
            vcpu.setRegsBytes(regs);
            vcpu.setSregsBytes(sregs);
            vcpu.setXsave(xsave);
            vcpu.setXcrs(xcrs);
            vcpu.setDebugRegs(debugRegs);
            vcpu.setLapic(new LapicState(lapic));
            int set = vcpu.setMsrsPrefix(msrs);
            if (set < msrs.size()) {
                throw in.bad("KVM_SET_MSRS set " + set + " of " + msrs.size() + " MSRs: rejected " + msrs.get(set));
            }
            vcpu.setVcpuEvents(events);
        } catch (IllegalArgumentException | SyscallException e) {
            throw in.bad("vCPU " + vcpu.id() + ": " + e.getMessage());
        }
    }

    @Override
    public VcpuEvent run() {
        while (true) {
            injectExternalInterrupt();
            VcpuExit exit = vcpu.run();
            switch (exit) {
                case VcpuExit.Io io -> exits.port(io);
                case VcpuExit.Mmio m -> {
                    StopReason bad = exits.mmio(index(), m);
                    if (bad != null) {
                        return ended(bad);
                    }
                }
                case VcpuExit.Interrupted i -> {
                    return VcpuEvent.KICKED;
                }
                case VcpuExit.IrqWindowOpen w -> { } // injected at the top of the loop
                case VcpuExit.IoapicEoi e -> exits.guarded("the IOAPIC's end of interrupt", () -> eoi.accept(e.vector()));
                case VcpuExit.Hlt h -> {
                    // the local APIC is always in KVM, which handles HLT itself
                    return ended(new StopReason.InternalError(index(), "unexpected HLT exit"));
                }
                case VcpuExit.Shutdown s -> {
                    return ended(new StopReason.TripleFault(index()));
                }
                case VcpuExit.SystemEvent e -> {
                    return ended(systemEvent(e));
                }
                case VcpuExit.InternalError e -> {
                    return ended(new StopReason.InternalError(index(), describe(e)));
                }
                case VcpuExit.FailEntry f -> {
                    return ended(new StopReason.InternalError(index(),
                            "KVM could not enter the guest: hardware entry failure reason 0x" + Long.toHexString(f.reason())));
                }
                case VcpuExit.GuestException g -> {
                    return ended(new StopReason.InternalError(index(), "unhandled guest exception " + g.exception()));
                }
                case VcpuExit.Unknown u -> {
                    return ended(new StopReason.InternalError(index(), "unexpected KVM exit reason " + u.reason()));
                }
            }
        }
    }

    private static VcpuEvent ended(StopReason reason) {
        return new VcpuEvent.Ended(reason);
    }

    private StopReason systemEvent(VcpuExit.SystemEvent e) {
        if (e.type() == KvmConstants.SYSTEM_EVENT_RESET) {
            return new StopReason.Reset(StopReason.ResetCause.KVM_SYSTEM_EVENT);
        }
        if (e.type() == KvmConstants.SYSTEM_EVENT_SHUTDOWN) {
            return new StopReason.PowerOff(StopReason.PowerOffCause.KVM_SYSTEM_EVENT);
        }
        return new StopReason.InternalError(index(), "guest crash (KVM system event " + e.type() + ")");
    }

    private String describe(VcpuExit.InternalError e) {
        String what = switch (e.suberror()) {
            case 1 -> "instruction emulation failed";
            case 2 -> "exception while delivering an exception";
            case 3 -> "event delivery failed";
            case 4 -> "unexpected exit reason";
            default -> "suberror " + e.suberror();
        };
        String where = "";
        try {
            Regs r = vcpu.getRegs();
            where = String.format(" at rip=0x%x", r.rip());
        } catch (RuntimeException ignored) {
            // the registers are a detail; the error stands without them
        }
        return what + where + " " + Arrays.stream(e.data()).mapToObj(d -> "0x" + Long.toHexString(d)).toList();
    }

    /** Split irqchip: hand the PIC's vector to KVM once the guest can take it (as QEMU does). */
    private void injectExternalInterrupt() {
        ExternalInterrupts p = pic;
        if (p == null) {
            return;
        }
        try {
            if (!p.pending()) {
                vcpu.setRequestInterruptWindow(false);
            } else if (vcpu.readyForInterruptInjection()) {
                vcpu.interrupt(p.acknowledge());
                vcpu.setRequestInterruptWindow(false);
            } else {
                vcpu.setRequestInterruptWindow(true);
            }
        } catch (RuntimeException e) {
            exits.failed(p, e); // runs before every entry: no lambda allocated on this path
        }
    }

    @Override
    public void kick() {
        vcpu.kick();
    }

    @Override
    public void close() {
        vcpu.close();
    }
}
