package dev.kindling.snapshot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SnapshotFileTest {
    private static final String VERSION = "0.9.0";
    /** magic 8, format 4, version length 4, "0.9.0" 5, payload length 8 */
    private static final int PAYLOAD_AT = 29;

    @TempDir
    Path dir;

    private byte[] state() {
        byte[] b = new byte[4096];
        new Random(5).nextBytes(b);
        return b;
    }

    private Path written() {
        Path f = dir.resolve("vm.state");
        SnapshotFile.write(f, VERSION, state());
        return f;
    }

    @Test
    void roundTripsAndLeavesNoTemporaryFile() throws Exception {
        Path f = written();
        assertThat(SnapshotFile.read(f, VERSION)).isEqualTo(state());
        assertThat(Files.size(f)).isEqualTo(PAYLOAD_AT + 4096 + 8);
        SnapshotFile.write(f, VERSION, new byte[0]); // replaces
        assertThat(SnapshotFile.read(f, VERSION)).isEmpty();
        try (Stream<Path> s = Files.list(dir)) {
            assertThat(s.map(p -> p.getFileName().toString())).containsExactly("vm.state");
        }
    }

    @Test
    void aMissingFileIsNamed() {
        assertThatThrownBy(() -> SnapshotFile.read(dir.resolve("nope"), VERSION)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("nope").hasMessageContaining("does not exist");
    }

    @Test
    void anotherFileIsNotASnapshot() throws Exception {
        Path f = dir.resolve("other");
        Files.writeString(f, "#!/bin/sh\necho hello\n");
        assertThatThrownBy(() -> SnapshotFile.read(f, VERSION)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("not a Kindling snapshot");
        Files.write(f, new byte[3]);
        assertThatThrownBy(() -> SnapshotFile.read(f, VERSION)).hasMessageContaining("not a Kindling snapshot");
    }

    @Test
    void anotherFormatVersionIsRefused() throws Exception {
        Path f = written();
        byte[] b = Files.readAllBytes(f);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(8, 2);
        Files.write(f, b);
        assertThatThrownBy(() -> SnapshotFile.read(f, VERSION)).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("format 2, this Kindling reads 1");
    }

    @Test
    void anotherKindlingVersionIsRefused() {
        Path f = written();
        assertThatThrownBy(() -> SnapshotFile.read(f, "1.0.0")).isInstanceOf(SnapshotException.class)
                .hasMessageContaining("taken by Kindling 0.9.0, this is 1.0.0");
    }

    @Test
    void aTruncatedFileIsRefused() throws Exception {
        Path f = written();
        byte[] b = Files.readAllBytes(f);
        for (int keep : new int[] {10, PAYLOAD_AT - 1, PAYLOAD_AT + 100, b.length - 1}) {
            Files.write(f, Arrays.copyOf(b, keep));
            assertThatThrownBy(() -> SnapshotFile.read(f, VERSION)).as("%d bytes kept", keep)
                    .isInstanceOf(SnapshotException.class).hasMessageContaining("truncated");
        }
    }

    @Test
    void aFlippedBitFailsTheChecksum() throws Exception {
        Path f = written();
        byte[] b = Files.readAllBytes(f);
        for (int at : new int[] {PAYLOAD_AT, PAYLOAD_AT + 2000, 18 /* in the version string */, b.length - 1}) {
            byte[] c = b.clone();
            c[at] ^= 0x10;
            Files.write(f, c);
            assertThatThrownBy(() -> SnapshotFile.read(f, VERSION)).as("bit flipped at %d", at)
                    .isInstanceOf(SnapshotException.class).hasMessageContaining("corrupted: checksum");
        }
    }
}
