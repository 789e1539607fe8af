package dev.kindling.cli;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class EscapeFilterTest {
    private final AtomicInteger quits = new AtomicInteger();
    private final ByteArrayOutputStream help = new ByteArrayOutputStream();

    private String through(String typed) throws IOException {
        return through(new ByteArrayInputStream(typed.getBytes(UTF_8)));
    }

    private String through(InputStream typed) throws IOException {
        EscapeFilter f = new EscapeFilter(typed, quits::incrementAndGet, new PrintStream(help, true, UTF_8));
        return new String(f.readAllBytes(), UTF_8);
    }

    @Test
    void plainKeysPassUntouched() throws IOException {
        assertThat(through("ls -l\r\u0003\u001b[A")).isEqualTo("ls -l\r\u0003\u001b[A");
        assertThat(quits).hasValue(0);
    }

    @Test
    void ctrlAXEndsTheStreamAndAsksToQuitAfterWhatCameBefore() throws IOException {
        assertThat(through("echo hi\r\u0001xnot sent")).isEqualTo("echo hi\r");
        assertThat(quits).hasValue(1);
    }

    @Test
    void ctrlACtrlASendsOneCtrlAAndOtherEscapesAreDropped() throws IOException {
        assertThat(through("a\u0001\u0001b\u0001zc")).isEqualTo("a\u0001bc");
        assertThat(through("\u0001h")).isEmpty();
        assertThat(help.toString(UTF_8)).contains("Ctrl-A x");
        assertThat(quits).hasValue(0);
    }

    @Test
    void anEscapeSplitAcrossReadsStillCounts() throws IOException {
        // one byte per read, as a terminal delivers keys
        InputStream slow = new InputStream() {
            private final byte[] keys = "ok\u0001x".getBytes(UTF_8);
            private int next;

            @Override
            public int read() {
                return next < keys.length ? keys[next++] : -1;
            }

            @Override
            public int read(byte[] b, int off, int len) {
                if (next >= keys.length) {
                    return -1;
                }
                b[off] = keys[next++];
                return 1;
            }
        };
        assertThat(through(slow)).isEqualTo("ok");
        assertThat(quits).hasValue(1);
    }
}
