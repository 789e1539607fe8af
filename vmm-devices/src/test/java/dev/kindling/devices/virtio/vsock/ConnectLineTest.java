package dev.kindling.devices.virtio.vsock;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

class ConnectLineTest {
    private static OptionalLong parse(String line) {
        byte[] b = line.getBytes(StandardCharsets.UTF_8);
        return ConnectLine.parse(b, b.length);
    }

    @Test
    void readsThePortInAnyCase() {
        assertThat(parse("CONNECT 52")).hasValue(52);
        assertThat(parse("connect 52")).hasValue(52);
        assertThat(parse("CoNnEcT 0")).hasValue(0);
        assertThat(parse("CONNECT 4294967295")).hasValue(0xFFFF_FFFFL);
    }

    @Test
    void splitsOnWhitespaceAndIgnoresLaterWords() {
        assertThat(parse("  CONNECT   52  ")).hasValue(52);
        assertThat(parse("CONNECT\t52\r")).hasValue(52);
        assertThat(parse("CONNECT 52 extra words")).hasValue(52);
        assertThat(parse("CONNECT +52")).as("Rust's u32 parse takes a leading +").hasValue(52);
        assertThat(parse("CONNECT 0052")).hasValue(52);
    }

    @Test
    void refusesMalformedLines() {
        assertThat(parse("")).isEmpty();
        assertThat(parse("CONNECT")).as("no port").isEmpty();
        assertThat(parse("CONNECT ")).isEmpty();
        assertThat(parse("CONNEC 52")).isEmpty();
        assertThat(parse("CONNECT52")).isEmpty();
        assertThat(parse("GET / HTTP/1.1")).isEmpty();
        assertThat(parse("CONNECT -1")).isEmpty();
        assertThat(parse("CONNECT 4294967296")).as("above u32").isEmpty();
        assertThat(parse("CONNECT 99999999999999999999")).isEmpty();
        assertThat(parse("CONNECT 0x34")).isEmpty();
        assertThat(parse("CONNECT 5 2")).hasValue(5);
        assertThat(parse("CONNECT ++52")).isEmpty();
        assertThat(parse("CONNECT +")).isEmpty();
        byte[] notUtf8 = {'C', 'O', 'N', 'N', 'E', 'C', 'T', ' ', '5', '2', ' ', (byte) 0xff};
        assertThat(ConnectLine.parse(notUtf8, notUtf8.length)).as("not UTF-8").isEmpty();
    }

    @Test
    void takesAtMost32BytesBeforeTheNewline() {
        String exactly32 = "CONNECT " + "0".repeat(22) + "52";
        assertThat(exactly32).hasSize(32);
        assertThat(parse(exactly32)).hasValue(52);
        assertThat(parse(exactly32 + " ")).isEmpty();
    }
}
