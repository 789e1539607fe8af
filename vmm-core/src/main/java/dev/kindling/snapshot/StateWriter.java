package dev.kindling.snapshot;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;

/** Writes a part's state as bytes: little-endian values, length-prefixed arrays and strings. */
public final class StateWriter {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    public StateWriter putBoolean(boolean v) {
        out.write(v ? 1 : 0);
        return this;
    }

    public StateWriter putByte(int v) {
        out.write(v);
        return this;
    }

    public StateWriter putShort(int v) {
        out.write(v);
        out.write(v >>> 8);
        return this;
    }

    public StateWriter putInt(int v) {
        for (int i = 0; i < 32; i += 8) {
            out.write(v >>> i);
        }
        return this;
    }

    public StateWriter putLong(long v) {
        for (int i = 0; i < 64; i += 8) {
            out.write((int) (v >>> i));
        }
        return this;
    }

    /** A length, then the bytes. */
    public StateWriter putBytes(byte[] v) {
        putInt(v.length);
        out.writeBytes(v);
        return this;
    }

    /** The bytes of {@code segment} (a kernel struct, say), length-prefixed as {@link #putBytes}. */
    public StateWriter putSegment(MemorySegment segment) {
        return putBytes(segment.toArray(ValueLayout.JAVA_BYTE));
    }

    public StateWriter putInts(int[] v) {
        putInt(v.length);
        for (int x : v) {
            putInt(x);
        }
        return this;
    }

    public StateWriter putLongs(long[] v) {
        putInt(v.length);
        for (long x : v) {
            putLong(x);
        }
        return this;
    }

    public StateWriter putString(String v) {
        return putBytes(v.getBytes(StandardCharsets.UTF_8));
    }

    /** {@code part}'s state as one length-prefixed block, so a reader can tell where it ends. */
    public StateWriter putState(Stateful part) {
        StateWriter inner = new StateWriter();
        part.saveState(inner);
        return putBytes(inner.toByteArray());
    }

    public int size() {
        return out.size();
    }

    public byte[] toByteArray() {
        return out.toByteArray();
    }
}
