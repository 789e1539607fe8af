package dev.kindling.snapshot;

/**
 * CRC-64 as Firecracker checksums its snapshot files (the {@code crc64} crate's, also Redis's):
 * CRC-64/REDIS, polynomial 0xad93d23594c935a9 (Jones), reflected, init 0, no final xor; the check
 * value of "123456789" is 0xe9c6d914c4b8d9ca. Byte-wise table, slicing by eight.
 */
public final class Crc64 {
    /** The polynomial bit-reversed, as a reflected CRC uses it. */
    private static final long POLY = 0x95ac9329ac4bc9b5L;
    private static final long[][] TABLE = new long[8][256];

    static {
        for (int i = 0; i < 256; i++) {
            long c = i;
            for (int k = 0; k < 8; k++) {
                c = (c & 1) != 0 ? (c >>> 1) ^ POLY : c >>> 1;
            }
            TABLE[0][i] = c;
        }
        for (int i = 0; i < 256; i++) {
            for (int t = 1; t < 8; t++) {
                long prev = TABLE[t - 1][i];
                TABLE[t][i] = (prev >>> 8) ^ TABLE[0][(int) (prev & 0xff)];
            }
        }
    }

    private long crc;

    /** Adds {@code b[off, off + len)}. */
    public Crc64 update(byte[] b, int off, int len) {
        long c = crc;
        int i = off;
        int end = off + len;
        for (; end - i >= 8; i += 8) {
            long v = c ^ ((b[i] & 0xffL) | (b[i + 1] & 0xffL) << 8 | (b[i + 2] & 0xffL) << 16 | (b[i + 3] & 0xffL) << 24
                    | (b[i + 4] & 0xffL) << 32 | (b[i + 5] & 0xffL) << 40 | (b[i + 6] & 0xffL) << 48 | (b[i + 7] & 0xffL) << 56);
            c = TABLE[7][(int) (v & 0xff)] ^ TABLE[6][(int) (v >>> 8 & 0xff)] ^ TABLE[5][(int) (v >>> 16 & 0xff)]
                    ^ TABLE[4][(int) (v >>> 24 & 0xff)] ^ TABLE[3][(int) (v >>> 32 & 0xff)] ^ TABLE[2][(int) (v >>> 40 & 0xff)]
                    ^ TABLE[1][(int) (v >>> 48 & 0xff)] ^ TABLE[0][(int) (v >>> 56)];
        }
        for (; i < end; i++) {
            c = TABLE[0][(int) ((c ^ b[i]) & 0xff)] ^ (c >>> 8);
        }
        crc = c;
        return this;
    }

    public Crc64 update(byte[] b) {
        return update(b, 0, b.length);
    }

    public long value() {
        return crc;
    }

    /** The checksum of {@code b[off, off + len)}. */
    public static long of(byte[] b, int off, int len) {
        return new Crc64().update(b, off, len).value();
    }

    public static long of(byte[] b) {
        return of(b, 0, b.length);
    }
}
