package dev.kindling.kvm;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import dev.kindling.machine.ExitDispatch;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Why {@link Vcpu#run()} returned. {@link Io} and {@link Mmio} refer to the vCPU's run page: read
 * their data and complete reads before the next {@code run()}, which overwrites it.
 */
public sealed interface VcpuExit {
    Hlt HLT = new Hlt();
    Shutdown SHUTDOWN = new Shutdown();
    Interrupted INTERRUPTED = new Interrupted();
    IrqWindowOpen IRQ_WINDOW_OPEN = new IrqWindowOpen();

    enum IoDirection {
        IN,
        OUT
    }

    /**
     * A port I/O instruction: {@code count} accesses of {@code size} bytes (count > 1 for rep ins/outs)
     * whose data sits at {@code dataOffset} in the run page. For {@link IoDirection#OUT} read it with
     * {@link #value()}; for {@link IoDirection#IN} store the result with {@link #setValue(long)}.
     */
    record Io(IoDirection direction, int port, int size, int count, long dataOffset, MemorySegment runPage)
            implements VcpuExit, ExitDispatch.PortAccess {

        @Override
        public boolean isIn() {
            return direction == IoDirection.IN;
        }

        public boolean isOut() {
            return direction == IoDirection.OUT;
        }

        /** All {@code size * count} data bytes, in the run page. */
        public MemorySegment data() {
            return runPage.asSlice(dataOffset, (long) size * count);
        }

        /** The first (usually only) value written by an OUT, zero-extended. */
        public long value() {
            return value(0);
        }

        /** The {@code i}-th value of a string OUT, zero-extended. */
        @Override
        public long value(int i) {
            long at = at(i);
            return switch (size) {
                case 1 -> Byte.toUnsignedLong(runPage.get(JAVA_BYTE, at));
                case 2 -> Short.toUnsignedLong(runPage.get(JAVA_SHORT_UNALIGNED, at));
                default -> Integer.toUnsignedLong(runPage.get(JAVA_INT_UNALIGNED, at));
            };
        }

        /** Supplies the value an IN reads (its low {@code size} bytes). */
        public void setValue(long value) {
            setValue(0, value);
        }

        @Override
        public void setValue(int i, long value) {
            if (direction != IoDirection.IN) {
                throw new IllegalStateException("port 0x" + Integer.toHexString(port) + " access is an OUT, not an IN");
            }
            long at = at(i);
            switch (size) {
                case 1 -> runPage.set(JAVA_BYTE, at, (byte) value);
                case 2 -> runPage.set(JAVA_SHORT_UNALIGNED, at, (short) value);
                default -> runPage.set(JAVA_INT_UNALIGNED, at, (int) value);
            }
        }

        private long at(int i) {
            if (i < 0 || i >= count) {
                throw new IndexOutOfBoundsException("I/O value " + i + " of " + count);
            }
            return dataOffset + (long) i * size;
        }

        @Override
        public String toString() {
            return "Io[" + direction + " port=0x" + Integer.toHexString(port) + " size=" + size + " count=" + count + "]";
        }
    }

    /**
     * An access to guest-physical memory no slot backs. {@code data} holds the written bytes
     * (little-endian, {@code len} of them) for a write; complete a read with {@link #complete(long)}.
     */
    record Mmio(long address, long data, int len, boolean isWrite, MemorySegment runPage)
            implements VcpuExit, ExitDispatch.MmioAccess {
        /** The written bytes ({@code len} of them). */
        public byte[] dataBytes() {
            byte[] b = new byte[len];
            for (int i = 0; i < len; i++) {
                b[i] = (byte) (data >>> (8 * i));
            }
            return b;
        }

        /** Supplies the value a read returns: its low {@code len} bytes, little-endian. */
        @Override
        public void complete(long value) {
            checkRead();
            for (int i = 0; i < len; i++) {
                runPage.set(JAVA_BYTE, KvmRun.MMIO_DATA + i, (byte) (value >>> (8 * i)));
            }
        }

        /** Supplies the bytes a read returns; {@code bytes.length} must equal {@code len}. */
        public void complete(byte[] bytes) {
            checkRead();
            if (bytes.length != len) {
                throw new IllegalArgumentException("MMIO read of " + len + " bytes completed with " + bytes.length);
            }
            MemorySegment.copy(bytes, 0, runPage, JAVA_BYTE, KvmRun.MMIO_DATA, len);
        }

        private void checkRead() {
            if (isWrite) {
                throw new IllegalStateException("MMIO access at 0x" + Long.toHexString(address) + " is a write");
            }
        }

        @Override
        public String toString() {
            return "Mmio[" + (isWrite ? "write" : "read") + " 0x" + Long.toHexString(address) + " len=" + len
                    + (isWrite ? " data=0x" + Long.toHexString(data) : "") + "]";
        }
    }

    /** The guest executed HLT (only reported without an in-kernel LAPIC). */
    record Hlt() implements VcpuExit {}

    /** Triple fault or similar: the guest cannot continue. */
    record Shutdown() implements VcpuExit {}

    /** KVM could not enter the guest; {@code reason} is the hardware's (VMX exit qualification). */
    record FailEntry(long reason, int cpu) implements VcpuExit {}

    /** KVM hit something it cannot handle, see {@code KVM_INTERNAL_ERROR_*}; {@code data} is suberror-specific. */
    record InternalError(int suberror, long[] data) implements VcpuExit {
        public InternalError {
            data = data.clone();
        }

        @Override
        public long[] data() {
            return data.clone();
        }

        @Override
        public String toString() {
            StringBuilder sb = new StringBuilder("InternalError[suberror=" + suberror + ", data=[");
            for (int i = 0; i < data.length; i++) {
                sb.append(i == 0 ? "" : ", ").append("0x").append(Long.toHexString(data[i]));
            }
            return sb.append("]]").toString();
        }
    }

    /**
     * A system event such as {@link KvmConstants#SYSTEM_EVENT_SHUTDOWN} or {@code RESET}. {@code flags}
     * is the legacy first word; {@code data} holds the {@code ndata} words newer kernels report.
     */
    record SystemEvent(int type, long flags, long[] data) implements VcpuExit {
        public SystemEvent {
            data = data.clone();
        }

        @Override
        public long[] data() {
            return data.clone();
        }

        @Override
        public String toString() {
            return "SystemEvent[type=" + type + ", flags=0x" + Long.toHexString(flags) + ", data=" + Arrays.toString(data) + "]";
        }
    }

    /** With a split irqchip: the guest's LAPIC sent EOI for a level-triggered {@code vector}. */
    record IoapicEoi(int vector) implements VcpuExit {}

    /** An exception KVM reports to userspace (rare on x86). */
    record GuestException(int exception, int errorCode) implements VcpuExit {}

    /** KVM_RUN was interrupted: a {@link Vcpu#kick()}, another signal, or {@code immediate_exit}. */
    record Interrupted() implements VcpuExit {}

    /** The guest can take an interrupt now (after {@link Vcpu#setRequestInterruptWindow}). */
    record IrqWindowOpen() implements VcpuExit {}

    /** Any other exit; {@code hardwareExitReason} is set for {@code KVM_EXIT_UNKNOWN}. */
    record Unknown(int reason, long hardwareExitReason) implements VcpuExit {}
}
