package dev.kindling.snapshot;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * Reads what a {@link StateWriter} wrote. Running past the end, or a length that does not fit what
 * is left, throws {@link SnapshotException} naming {@link #what()}.
 */
public final class StateReader {
    private final ByteBuffer in;
    private final String what;

    /** Reads {@code state}, the state of {@code what} (for error messages: {@code "device serial0"}). */
    public StateReader(byte[] state, String what) {
        this.in = ByteBuffer.wrap(state).order(ByteOrder.LITTLE_ENDIAN);
        this.what = what;
    }

    public String what() {
        return what;
    }

    private ByteBuffer need(long bytes) {
        if (bytes < 0 || bytes > in.remaining()) {
            throw new SnapshotException("the state of " + what + " is short or corrupted: " + bytes
                    + " bytes wanted at offset " + in.position() + ", " + in.remaining() + " left");
        }
        return in;
    }

    public boolean getBoolean() {
        int b = need(1).get();
        if (b != 0 && b != 1) {
            throw bad("a boolean is " + b);
        }
        return b == 1;
    }

    public int getByte() {
        return need(1).get() & 0xff;
    }

    public int getShort() {
        return need(2).getShort() & 0xffff;
    }

    public int getInt() {
        return need(4).getInt();
    }

    public long getLong() {
        return need(8).getLong();
    }

    /** An int that must lie in {@code [min, max]}; {@code field} names it in the error. */
    public int getInt(String field, int min, int max) {
        int v = getInt();
        if (v < min || v > max) {
            throw bad(field + " is " + v + ", not in [" + min + ", " + max + "]");
        }
        return v;
    }

    public byte[] getBytes() {
        int n = getInt();
        byte[] b = new byte[Math.max(0, n)];
        need(n).get(b);
        return b;
    }

    /** Bytes that must be exactly {@code segment}'s size, copied into it. */
    public void getSegment(MemorySegment segment) {
        byte[] b = getBytes();
        if (b.length != segment.byteSize()) {
            throw bad("a block of " + b.length + " bytes where " + segment.byteSize() + " were expected");
        }
        MemorySegment.copy(MemorySegment.ofArray(b), 0, segment, 0, b.length);
    }

    public int[] getInts() {
        int n = getInt();
        need(4L * n);
        int[] v = new int[n];
        for (int i = 0; i < n; i++) {
            v[i] = in.getInt();
        }
        return v;
    }

    public long[] getLongs() {
        int n = getInt();
        need(8L * n);
        long[] v = new long[n];
        for (int i = 0; i < n; i++) {
            v[i] = in.getLong();
        }
        return v;
    }

    public String getString() {
        return new String(getBytes(), StandardCharsets.UTF_8);
    }

    /** Restores {@code part} from one block {@link StateWriter#putState} wrote; all of it must be read. */
    public void getState(Stateful part, String partName) {
        StateReader inner = new StateReader(getBytes(), partName);
        part.restoreState(inner);
        inner.expectEnd();
    }

    /** Throws unless everything was read: a longer state is another layout. */
    public void expectEnd() {
        if (in.hasRemaining()) {
            throw bad(in.remaining() + " bytes left over (a state of another layout)");
        }
    }

    /** An exception for a value that makes no sense, naming this state. */
    public SnapshotException bad(String problem) {
        return new SnapshotException("the state of " + what + " is corrupted: " + problem);
    }
}
