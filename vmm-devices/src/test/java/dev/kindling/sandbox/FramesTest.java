package dev.kindling.sandbox;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The frame codec against the byte layout of docs/agent-protocol.md. */
class FramesTest {
    @Test
    void headerIsLittleEndianLengthTypeAndZeroReserved() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Frames.write(out, Frames.EXEC, new byte[] {9, 8, 7});
        assertThat(out.toByteArray()).containsExactly(3, 0, 0, 0, 16, 0, 0, 0, 9, 8, 7);
    }

    @Test
    void framesRoundTripAndEndOfStreamIsNull() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] big = new byte[Frames.MAX_BODY];
        big[big.length - 1] = 5;
        Frames.write(out, Frames.DATA, big);
        Frames.write(out, Frames.DATA, new byte[0]);
        ByteArrayInputStream in = new ByteArrayInputStream(out.toByteArray());
        Frames.Frame a = Frames.read(in);
        assertThat(a.type()).isEqualTo(Frames.DATA);
        assertThat(a.body()).isEqualTo(big);
        assertThat(Frames.read(in).body()).isEmpty();
        assertThat(Frames.read(in)).isNull();
    }

    @Test
    void bodiesOverOneMibAreRefusedBothWays() {
        assertThatThrownBy(() -> Frames.write(new ByteArrayOutputStream(), Frames.DATA, new byte[Frames.MAX_BODY + 1]))
                .isInstanceOf(IllegalArgumentException.class);
        byte[] header = {1, 0, 0x10, 0, 33, 0, 0, 0}; // 1 MiB + 1
        assertThatThrownBy(() -> Frames.read(new ByteArrayInputStream(header)))
                .isInstanceOf(Frames.ProtocolException.class).hasMessageContaining("1048577");
    }

    @Test
    void nonzeroReservedAndTruncatedFramesAreErrors() {
        assertThatThrownBy(() -> Frames.read(new ByteArrayInputStream(new byte[] {0, 0, 0, 0, 4, 0, 1, 0})))
                .isInstanceOf(Frames.ProtocolException.class).hasMessageContaining("reserved");
        assertThatThrownBy(() -> Frames.read(new ByteArrayInputStream(new byte[] {4, 0, 0})))
                .isInstanceOf(EOFException.class);
        assertThatThrownBy(() -> Frames.read(new ByteArrayInputStream(new byte[] {4, 0, 0, 0, 19, 0, 0, 0, 1})))
                .isInstanceOf(EOFException.class);
    }

    @Test
    void bodyFieldsAndStrings() throws Exception {
        byte[] body = Frames.body().u32(1).string("héllo").strings(List.of("a", "")).u64(1L << 40).build();
        assertThat(body).startsWith(1, 0, 0, 0, 6, 0, 0, 0, 'h');
        Frames.Body b = new Frames.Frame(Frames.EXEC, body).reader();
        assertThat(b.u32("flags")).isEqualTo(1);
        assertThat(b.string("s")).isEqualTo("héllo");
        assertThat(b.u32("n")).isEqualTo(2);
        assertThat(b.string("a")).isEqualTo("a");
        assertThat(b.string("b")).isEmpty();
        assertThat(b.u64("big")).isEqualTo(1L << 40);
        b.end();
    }

    @Test
    void shortBodiesStringsPastTheEndAndLeftoversAreErrors() {
        Frames.Body shortBody = new Frames.Frame(Frames.EXIT, new byte[] {0, 0, 0}).reader();
        assertThatThrownBy(() -> shortBody.u32("kind")).isInstanceOf(Frames.ProtocolException.class)
                .hasMessageContaining("EXIT body too short for its kind");
        Frames.Body past = new Frames.Frame(Frames.ERROR, new byte[] {2, 0, 0, 0, 9, 0, 0, 0, 'x'}).reader();
        assertThatThrownBy(() -> {
            past.i32("errno");
            past.string("message");
        }).isInstanceOf(Frames.ProtocolException.class).hasMessageContaining("runs past the body");
        Frames.Body extra = new Frames.Frame(Frames.STARTED, new byte[] {1, 0, 0, 0, 0}).reader();
        assertThatThrownBy(() -> {
            extra.u32("pid");
            extra.end();
        }).isInstanceOf(Frames.ProtocolException.class).hasMessageContaining("1 bytes past");
        assertThatThrownBy(() -> Frames.body().string("a\0b")).isInstanceOf(IllegalArgumentException.class);
    }
}
