package dev.kindling.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@link SandboxCommand}: one sandbox with the default guest, both commands' output and exit codes. */
class SandboxCommandTest {
    @Test
    @Timeout(900)
    void printsWhatEachCommandLeft() throws Exception {
        GuestDir.locate();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        SandboxCommand.run(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        String sum = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                .digest("hello sandbox\n".getBytes(StandardCharsets.UTF_8))).substring(0, 16);
        assertThat(bytes.toString(StandardCharsets.UTF_8)).matches("""
                \\$ uname -a
                stdout: Linux \\S+ 6\\.1\\.\\S+ .*
                exit code: 0
                \\$ sh -c '.*'
                stdout: %s
                stderr: done
                exit code: 3
                """.formatted(sum));
    }
}
