package dev.kindling.kvm;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * The local APIC's register page as KVM_GET_LAPIC returns it, {@code struct kvm_lapic_state}: 1024
 * bytes, each 32-bit register at its xAPIC MMIO offset. Immutable; {@link #withRegister} makes a copy.
 */
public final class LapicState {
    public static final int SIZE = KvmConstants.APIC_REG_SIZE;

    /** Register offsets (xAPIC MMIO layout). */
    public static final int ID = 0x20, VERSION = 0x30, TPR = 0x80, EOI = 0xb0, LDR = 0xd0, DFR = 0xe0,
            SPURIOUS = 0xf0, ICR_LOW = 0x300, ICR_HIGH = 0x310, LVT_TIMER = 0x320, LVT_LINT0 = 0x350,
            LVT_LINT1 = 0x360, LVT_ERROR = 0x370, TIMER_INITIAL_COUNT = 0x380, TIMER_DIVIDE = 0x3e0;

    /** LVT delivery modes (bits 8-10). */
    public static final int DELIVERY_FIXED = 0, DELIVERY_NMI = 4, DELIVERY_EXTINT = 7;

    private final byte[] regs;

    public LapicState(byte[] regs) {
        if (regs.length != SIZE) {
            throw new IllegalArgumentException("LAPIC state is " + SIZE + " bytes, got " + regs.length);
        }
        this.regs = regs.clone();
    }

    public byte[] toBytes() {
        return regs.clone();
    }

    /** The 32-bit register at {@code offset} (a multiple of 16 below 0x400). */
    public int register(int offset) {
        checkOffset(offset);
        return ByteBuffer.wrap(regs).order(ByteOrder.LITTLE_ENDIAN).getInt(offset);
    }

    public LapicState withRegister(int offset, int value) {
        checkOffset(offset);
        byte[] copy = regs.clone();
        ByteBuffer.wrap(copy).order(ByteOrder.LITTLE_ENDIAN).putInt(offset, value);
        return new LapicState(copy);
    }

    /** Sets the delivery mode of an LVT register such as {@link #LVT_LINT0}, keeping its other bits. */
    public LapicState withDeliveryMode(int lvtOffset, int mode) {
        int v = register(lvtOffset);
        return withRegister(lvtOffset, (v & ~0x700) | ((mode & 7) << 8));
    }

    private static void checkOffset(int offset) {
        if (offset < 0 || offset > SIZE - 4 || offset % 16 != 0) {
            throw new IllegalArgumentException("bad LAPIC register offset 0x" + Integer.toHexString(offset));
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LapicState l && Arrays.equals(regs, l.regs);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(regs);
    }

    @Override
    public String toString() {
        return "LapicState[id=0x" + Integer.toHexString(register(ID)) + ", spurious=0x"
                + Integer.toHexString(register(SPURIOUS)) + ", lint0=0x" + Integer.toHexString(register(LVT_LINT0))
                + ", lint1=0x" + Integer.toHexString(register(LVT_LINT1)) + "]";
    }
}
