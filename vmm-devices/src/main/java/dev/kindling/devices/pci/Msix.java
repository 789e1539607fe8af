package dev.kindling.devices.pci;

import dev.kindling.device.Device;
import dev.kindling.irq.MsiVector;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.function.IntFunction;

/**
 * A function's MSI-X (PCI Local Bus 3.0, section 6.8.2): the capability, the vector table and the
 * pending-bit array in one of its BARs, each table entry backed by an {@link MsiVector} of the
 * interrupt service. An entry is masked while its mask bit, the function mask, or MSI-X being off
 * says so; a trigger while masked stays pending in its vector, a trigger while MSI-X is off is
 * dropped (the function would use INTx then).
 *
 * <p>Table and PBA accesses are 4 or 8 bytes, naturally aligned; anything else reads as ones and is
 * ignored on write, as the specification allows.
 */
public final class Msix implements AutoCloseable {
    public static final int CAPABILITY_ID = 0x11;
    public static final int CAPABILITY_LENGTH = 12;
    public static final int ENTRY_SIZE = 16;
    /** The specification's limit on vectors per function. */
    public static final int MAX_VECTORS = 2048;
    private static final int CONTROL_ENABLE = 1 << 15, CONTROL_FUNCTION_MASK = 1 << 14;
    private static final int ENTRY_MASKED = 1;

    private final int bar;
    private final long tableOffset, pbaOffset;
    private final List<MsiVector> vectors;
    private final long[] address;
    private final int[] data, control;
    private boolean enabled, functionMask; // guarded by this
    private boolean closed;

    /**
     * {@code vectors} entries in BAR {@code bar}, the table at {@code tableOffset} and the PBA at
     * {@code pbaOffset} (both 8-byte aligned, not overlapping); {@code vector} makes entry i's MSI.
     */
    public Msix(int vectors, int bar, long tableOffset, long pbaOffset, IntFunction<MsiVector> vector) {
        if (vectors < 1 || vectors > MAX_VECTORS) {
            throw new IllegalArgumentException("MSI-X vectors " + vectors + " is not in 1-" + MAX_VECTORS);
        }
        if (bar < 0 || bar > 5) {
            throw new IllegalArgumentException("MSI-X BAR " + bar + " is not in 0-5");
        }
        long tableEnd = tableOffset + (long) vectors * ENTRY_SIZE, pbaEnd = pbaOffset + pbaBytes(vectors);
        if (tableOffset < 0 || pbaOffset < 0 || (tableOffset & 7) != 0 || (pbaOffset & 7) != 0
                || tableOffset < pbaEnd && pbaOffset < tableEnd) {
            throw new IllegalArgumentException("MSI-X table at 0x" + Long.toHexString(tableOffset) + " and PBA at 0x"
                    + Long.toHexString(pbaOffset) + " for " + vectors + " vectors overlap or are misaligned");
        }
        this.bar = bar;
        this.tableOffset = tableOffset;
        this.pbaOffset = pbaOffset;
        this.address = new long[vectors];
        this.data = new int[vectors];
        this.control = new int[vectors];
        List<MsiVector> made = new ArrayList<>(vectors);
        try {
            for (int i = 0; i < vectors; i++) {
                MsiVector v = Objects.requireNonNull(vector.apply(i), "MSI vector");
                made.add(v);
                v.setMasked(true);
            }
        } catch (RuntimeException | Error e) {
            made.forEach(MsiVector::close);
            throw e;
        }
        this.vectors = List.copyOf(made);
        reset();
    }

    private static long pbaBytes(int vectors) {
        return (vectors + 63) / 64 * 8L;
    }

    /** Bytes of the BAR the table and PBA need (a power of two, at least 4 KiB: one page, so a guest can map it alone). */
    public long barBytes() {
        long end = Math.max(tableOffset + (long) vectors.size() * ENTRY_SIZE, pbaOffset + pbaBytes(vectors.size()));
        return Math.max(4096, Long.highestOneBit(end - 1) << 1);
    }

    public int vectors() {
        return vectors.size();
    }

    /** Entry {@code i}'s vector (tests look at its state). */
    public MsiVector vector(int i) {
        return vectors.get(i);
    }

    public synchronized boolean enabled() {
        return enabled;
    }

    /** Raises entry {@code i}: delivered, kept pending while masked, dropped while MSI-X is off or i is out of range. */
    public synchronized void trigger(int i) {
        if (enabled && !closed && i >= 0 && i < vectors.size()) {
            vectors.get(i).trigger();
        }
    }

    /** The capability the host bridge chains into the function's configuration space. */
    public PciCapability capability() {
        return new PciCapability() {
            @Override
            public int id() {
                return CAPABILITY_ID;
            }

            @Override
            public int length() {
                return CAPABILITY_LENGTH;
            }

            @Override
            public long read(int offset, int size) {
                long dwords = (long) controlWord() << 16 | (tableOffset | bar) << 32;
                long high = pbaOffset | bar;
                // The capability's bytes by offset: 0-1 (id, next) are the bridge's, then control, table, PBA.
                byte[] bytes = new byte[CAPABILITY_LENGTH];
                for (int i = 0; i < 8; i++) {
                    bytes[i] = (byte) (dwords >>> (8 * i));
                }
                for (int i = 0; i < 4; i++) {
                    bytes[8 + i] = (byte) (high >>> (8 * i));
                }
                long v = 0;
                for (int i = 0; i < size && offset + i < CAPABILITY_LENGTH; i++) {
                    v |= (bytes[offset + i] & 0xffL) << (8 * i);
                }
                return v;
            }

            @Override
            public void write(int offset, int size, long value) {
                // Only message control's high byte (enable, function mask) is writable.
                if (offset <= 3 && offset + size > 3) {
                    writeControl((int) (value >>> (8 * (3 - offset))) & 0xff);
                }
            }
        };
    }

    private synchronized int controlWord() {
        return (vectors.size() - 1) | (enabled ? CONTROL_ENABLE : 0) | (functionMask ? CONTROL_FUNCTION_MASK : 0);
    }

    private synchronized void writeControl(int highByte) {
        enabled = (highByte & CONTROL_ENABLE >>> 8) != 0;
        functionMask = (highByte & CONTROL_FUNCTION_MASK >>> 8) != 0;
        for (int i = 0; i < vectors.size(); i++) {
            applyMask(i);
        }
    }

    private void applyMask(int i) {
        if (!closed) {
            vectors.get(i).setMasked(!enabled || functionMask || (control[i] & ENTRY_MASKED) != 0);
        }
    }

    /** Reads the table or PBA at {@code offset} into the BAR. */
    public synchronized long read(long offset, int size) {
        if (!aligned(offset, size)) {
            return Device.ones(size);
        }
        if (size == 8) {
            return read4(offset) & 0xffff_ffffL | read4(offset + 4) << 32;
        }
        return read4(offset);
    }

    private long read4(long offset) {
        long t = offset - tableOffset;
        if (t >= 0 && t < (long) vectors.size() * ENTRY_SIZE) {
            int i = (int) (t / ENTRY_SIZE);
            return switch ((int) (t % ENTRY_SIZE)) {
                case 0 -> address[i] & 0xffff_ffffL;
                case 4 -> address[i] >>> 32;
                case 8 -> data[i] & 0xffff_ffffL;
                default -> control[i] & 0xffff_ffffL;
            };
        }
        long p = offset - pbaOffset;
        if (p >= 0 && p < pbaBytes(vectors.size())) {
            long bits = 0;
            for (int b = 0; b < 32; b++) {
                int i = (int) (p * 8 + b);
                if (i < vectors.size() && !closed && vectors.get(i).pending()) {
                    bits |= 1L << b;
                }
            }
            return bits;
        }
        return 0; // reserved space of the BAR reads zero
    }

    /** Writes the table at {@code offset} into the BAR (the PBA is read-only). */
    public synchronized void write(long offset, int size, long value) {
        if (!aligned(offset, size)) {
            return;
        }
        write4(offset, (int) value);
        if (size == 8) {
            write4(offset + 4, (int) (value >>> 32));
        }
    }

    private void write4(long offset, int value) {
        long t = offset - tableOffset;
        if (t < 0 || t >= (long) vectors.size() * ENTRY_SIZE) {
            return;
        }
        int i = (int) (t / ENTRY_SIZE);
        switch ((int) (t % ENTRY_SIZE)) {
            case 0 -> address[i] = address[i] & ~0xffff_ffffL | value & 0xffff_fffcL;
            case 4 -> address[i] = address[i] & 0xffff_ffffL | (long) value << 32;
            case 8 -> data[i] = value;
            default -> {
                control[i] = value & ENTRY_MASKED;
                applyMask(i);
                return;
            }
        }
        if (!closed) {
            vectors.get(i).configure(address[i], data[i]);
        }
    }

    private static boolean aligned(long offset, int size) {
        return (size == 4 || size == 8) && offset >= 0 && (offset & (size - 1)) == 0;
    }

    /** Back to the state after creation: MSI-X off, every entry masked and cleared. */
    public synchronized void reset() {
        enabled = false;
        functionMask = false;
        for (int i = 0; i < vectors.size(); i++) {
            address[i] = 0;
            data[i] = 0;
            control[i] = ENTRY_MASKED;
            applyMask(i);
        }
    }

    /** Frees the vectors; later triggers are dropped. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        vectors.forEach(MsiVector::close);
    }
}
