package dev.kindling.snapshot;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.Random;
import org.junit.jupiter.api.Test;

class Crc64Test {
    @Test
    void matchesTheCheckValueOfCrc64Redis() {
        assertThat(Crc64.of("123456789".getBytes(StandardCharsets.US_ASCII))).isEqualTo(0xe9c6d914c4b8d9caL);
        assertThat(Crc64.of(new byte[0])).isZero();
    }

    @Test
    void matchesFirecrackersCrcWriterExample() {
        // vmm::snapshot::crc::CRC64Writer's doc test: sixteen bytes of 123
        byte[] b = new byte[16];
        java.util.Arrays.fill(b, (byte) 123);
        assertThat(Crc64.of(b)).isEqualTo(0x29d5357216326566L);
    }

    @Test
    void piecewiseUpdatesEqualOneUpdate() {
        byte[] b = new byte[1000];
        new Random(3).nextBytes(b);
        long whole = Crc64.of(b);
        for (int cut : new int[] {0, 1, 7, 8, 9, 500, 999, 1000}) {
            assertThat(new Crc64().update(b, 0, cut).update(b, cut, b.length - cut).value()).as("cut %d", cut).isEqualTo(whole);
        }
    }
}
