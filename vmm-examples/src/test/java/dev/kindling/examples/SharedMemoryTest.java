package dev.kindling.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@link SharedMemory}: two sandboxes and the program exchange lines and doorbells over one ivshmem server. */
class SharedMemoryTest {
    @Test
    @Timeout(900)
    void bothVmsAndTheProgramSeeEachOthersBytesAndDoorbells() throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        SharedMemory.run(GuestDir.locate(), new PrintStream(bytes, true, StandardCharsets.UTF_8));
        String output = bytes.toString(StandardCharsets.UTF_8);
        assertThat(output).matches("""
                ivshmem server \\S+/ivshmem\\.sock: 1024 KiB shared, 1 vector per peer
                peers: vm a \\d+, vm b \\d+, this program \\d+
                vm a wrote "hello from vm a" and rang vm b
                vm b was interrupted \\(status=1\\) and read "hello from vm a"
                vm b wrote "hello back from vm b" and rang this program
                this program was interrupted and read "hello from vm a" and "hello back from vm b"
                """);
        Matcher ids = Pattern.compile("peers: vm a (\\d+), vm b (\\d+), this program (\\d+)").matcher(output);
        assertThat(ids.find()).isTrue();
        assertThat(List.of(ids.group(1), ids.group(2), ids.group(3))).as("the peer ids").doesNotHaveDuplicates();
    }
}
