package dev.kindling.kvm;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import dev.kindling.sys.CLayouts;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;

/**
 * The x87/SSE state, {@code struct kvm_fpu}: eight 16-byte x87 registers ({@code fpr}, 128 bytes),
 * control/status/tag words, last instruction and data pointers, sixteen 16-byte XMM registers
 * ({@code xmm}, 256 bytes) and MXCSR. Unsigned C fields are held zero-extended.
 */
public record Fpu(byte[] fpr, int fcw, int fsw, int ftwx, int lastOpcode, long lastIp, long lastDp,
        byte[] xmm, int mxcsr) {

    public static final int FPR_BYTES = 128, XMM_BYTES = 256;

    /** The power-on state: x87 control word 0x37f, MXCSR 0x1f80, everything else zero. */
    public static final Fpu INITIAL = new Fpu(new byte[FPR_BYTES], 0x37f, 0, 0, 0, 0, 0, new byte[XMM_BYTES], 0x1f80);

    private static final long FPR = off("fpr"), FCW = off("fcw"), FSW = off("fsw"), FTWX = off("ftwx"),
            LAST_OPCODE = off("last_opcode"), LAST_IP = off("last_ip"), LAST_DP = off("last_dp"),
            XMM = off("xmm"), MXCSR = off("mxcsr");

    private static long off(String field) {
        return CLayouts.offsetOf(KvmStructs.KVM_FPU, field);
    }

    public Fpu {
        if (fpr.length != FPR_BYTES || xmm.length != XMM_BYTES) {
            throw new IllegalArgumentException("fpr must be 128 bytes and xmm 256, got " + fpr.length + " and " + xmm.length);
        }
        fpr = fpr.clone();
        xmm = xmm.clone();
    }

    @Override
    public byte[] fpr() {
        return fpr.clone();
    }

    @Override
    public byte[] xmm() {
        return xmm.clone();
    }

    static Fpu read(MemorySegment m) {
        byte[] fpr = new byte[FPR_BYTES];
        byte[] xmm = new byte[XMM_BYTES];
        MemorySegment.copy(m, JAVA_BYTE, FPR, fpr, 0, FPR_BYTES);
        MemorySegment.copy(m, JAVA_BYTE, XMM, xmm, 0, XMM_BYTES);
        return new Fpu(fpr, Short.toUnsignedInt(m.get(JAVA_SHORT, FCW)), Short.toUnsignedInt(m.get(JAVA_SHORT, FSW)),
                Byte.toUnsignedInt(m.get(JAVA_BYTE, FTWX)), Short.toUnsignedInt(m.get(JAVA_SHORT, LAST_OPCODE)),
                m.get(JAVA_LONG, LAST_IP), m.get(JAVA_LONG, LAST_DP), xmm, m.get(JAVA_INT, MXCSR));
    }

    void write(MemorySegment m) {
        MemorySegment.copy(fpr, 0, m, JAVA_BYTE, FPR, FPR_BYTES);
        MemorySegment.copy(xmm, 0, m, JAVA_BYTE, XMM, XMM_BYTES);
        m.set(JAVA_SHORT, FCW, (short) fcw);
        m.set(JAVA_SHORT, FSW, (short) fsw);
        m.set(JAVA_BYTE, FTWX, (byte) ftwx);
        m.set(JAVA_SHORT, LAST_OPCODE, (short) lastOpcode);
        m.set(JAVA_LONG, LAST_IP, lastIp);
        m.set(JAVA_LONG, LAST_DP, lastDp);
        m.set(JAVA_INT, MXCSR, mxcsr);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Fpu f && Arrays.equals(fpr, f.fpr) && fcw == f.fcw && fsw == f.fsw && ftwx == f.ftwx
                && lastOpcode == f.lastOpcode && lastIp == f.lastIp && lastDp == f.lastDp
                && Arrays.equals(xmm, f.xmm) && mxcsr == f.mxcsr;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(fpr) * 31 + Arrays.hashCode(xmm) + Objects.hash(fcw, fsw, ftwx, lastOpcode,
                lastIp, lastDp, mxcsr);
    }

    @Override
    public String toString() {
        return "Fpu[fcw=0x" + Integer.toHexString(fcw) + ", fsw=0x" + Integer.toHexString(fsw) + ", ftwx=0x"
                + Integer.toHexString(ftwx) + ", lastOpcode=" + lastOpcode + ", lastIp=0x" + Long.toHexString(lastIp)
                + ", lastDp=0x" + Long.toHexString(lastDp) + ", mxcsr=0x" + Integer.toHexString(mxcsr) + "]";
    }
}
