package dev.kindling.snapshot;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;

/**
 * A versioned, checksummed state file. Layout (little-endian): magic "KINDLSNP", u32 format
 * version, u32 length and UTF-8 bytes of the Kindling version that wrote it, u64 payload length,
 * payload, u64 CRC-64 ({@link Crc64}) of everything before it. Written atomically: a reader sees
 * the old file or the whole new one, never a part.
 */
public final class SnapshotFile {
    public static final int FORMAT_VERSION = 1;
    private static final byte[] MAGIC = "KINDLSNP".getBytes(StandardCharsets.US_ASCII);
    /** A version string longer than this is not one Kindling wrote. */
    private static final int MAX_VERSION_LENGTH = 256;

    private SnapshotFile() {
    }

    /** Writes {@code state} to {@code file}: a temporary file in the same directory, fsync'd, renamed over it. */
    public static void write(Path file, String kindlingVersion, byte[] state) {
        byte[] version = kindlingVersion.getBytes(StandardCharsets.UTF_8);
        if (version.length > MAX_VERSION_LENGTH) {
            throw new IllegalArgumentException("Kindling version string of " + version.length + " bytes is too long");
        }
        ByteBuffer header = ByteBuffer.allocate(MAGIC.length + 4 + 4 + version.length + 8).order(ByteOrder.LITTLE_ENDIAN);
        header.put(MAGIC).putInt(FORMAT_VERSION).putInt(version.length).put(version).putLong(state.length);
        byte[] head = header.array();
        long crc = new Crc64().update(head).update(state).value();
        ByteBuffer tail = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, crc);
        Path dir = file.toAbsolutePath().getParent();
        Path temp = null;
        try {
            temp = Files.createTempFile(dir, "." + file.getFileName() + ".", ".tmp");
            try (FileChannel ch = FileChannel.open(temp, StandardOpenOption.WRITE)) {
                writeFully(ch, ByteBuffer.wrap(head));
                writeFully(ch, ByteBuffer.wrap(state));
                writeFully(ch, tail);
                ch.force(true);
            }
            try {
                Files.move(temp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                throw new SnapshotException("cannot replace " + file + " atomically", e);
            }
            temp = null;
            try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
                d.force(true); // the rename itself survives a crash
            } catch (IOException e) {
                // some file systems do not sync a directory; the file is written all the same
            }
        } catch (IOException e) {
            throw new SnapshotException("cannot write snapshot " + file + ": " + e.getMessage(), e);
        } finally {
            if (temp != null) {
                try {
                    Files.deleteIfExists(temp);
                } catch (IOException ignored) {
                    // the write already failed; that error is the one to report
                }
            }
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    /** The payload of {@code file}, checked: a {@link SnapshotException} says what is wrong with it. */
    public static byte[] read(Path file, String kindlingVersion) {
        byte[] all;
        try {
            all = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new SnapshotException("snapshot file " + file + " does not exist", e);
        } catch (IOException e) {
            throw new SnapshotException("cannot read snapshot " + file + ": " + e.getMessage(), e);
        } catch (OutOfMemoryError e) {
            throw new SnapshotException("snapshot " + file + " is too large to read", e);
        }
        ByteBuffer b = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
        if (all.length < MAGIC.length || !Arrays.equals(all, 0, MAGIC.length, MAGIC, 0, MAGIC.length)) {
            throw new SnapshotException(file + " is not a Kindling snapshot (no KINDLSNP magic)");
        }
        b.position(MAGIC.length);
        if (b.remaining() < 8) {
            throw truncated(file, all.length);
        }
        int format = b.getInt();
        if (format != FORMAT_VERSION) {
            throw new SnapshotException(file + " is snapshot format " + Integer.toUnsignedString(format)
                    + ", this Kindling reads " + FORMAT_VERSION);
        }
        int versionLength = b.getInt();
        if (versionLength < 0 || versionLength > MAX_VERSION_LENGTH) {
            throw new SnapshotException(file + " is corrupted: a Kindling version of " + Integer.toUnsignedString(versionLength) + " bytes");
        }
        if (b.remaining() < versionLength + 8) {
            throw truncated(file, all.length);
        }
        byte[] version = new byte[versionLength];
        b.get(version);
        long payloadLength = b.getLong();
        int payloadAt = b.position();
        if (payloadLength < 0 || payloadLength > b.remaining() - 8L) {
            throw new SnapshotException(file + " is truncated: it says " + Long.toUnsignedString(payloadLength)
                    + " bytes of state follow, the file has " + Math.max(0, b.remaining() - 8) + " (" + all.length + " bytes in all)");
        }
        int crcAt = payloadAt + (int) payloadLength;
        if (crcAt + 8 != all.length) {
            throw new SnapshotException(file + " is corrupted: " + (all.length - crcAt - 8) + " bytes after the checksum");
        }
        long stored = b.getLong(crcAt);
        long actual = Crc64.of(all, 0, crcAt);
        if (stored != actual) {
            throw new SnapshotException(file + " is corrupted: checksum 0x" + Long.toHexString(actual)
                    + " does not match the stored 0x" + Long.toHexString(stored));
        }
        // checked after the checksum, so a flipped bit in the version reads as corruption, not as another Kindling
        String writer = new String(version, StandardCharsets.UTF_8);
        if (!writer.equals(kindlingVersion)) {
            throw new SnapshotException(file + " was taken by Kindling " + writer + ", this is " + kindlingVersion);
        }
        return Arrays.copyOfRange(all, payloadAt, crcAt);
    }

    private static SnapshotException truncated(Path file, long size) {
        return new SnapshotException(file + " is truncated: " + size + " bytes end inside the header");
    }
}
