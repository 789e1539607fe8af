package dev.kindling.sys;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.testing.CProbe;
import dev.kindling.testing.Require;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.PaddingLayout;
import java.lang.foreign.StructLayout;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * The C library structs the system-call layer lays out by hand (sigaction, msghdr, iovec, cmsghdr,
 * pollfd, sigset_t) against the machine's headers: gcc prints sizeof and offsetof of every member.
 */
class SysLayoutTest {
    private static final Map<String, StructLayout> STRUCTS = new LinkedHashMap<>();

    static {
        STRUCTS.put("sigaction", Libc.SIGACTION_LAYOUT);
        STRUCTS.put("msghdr", UnixSocket.MSGHDR);
        STRUCTS.put("iovec", UnixSocket.IOVEC);
        STRUCTS.put("cmsghdr", UnixSocket.CMSGHDR);
        STRUCTS.put("pollfd", Poller.POLLFD);
    }

    @Test
    void layoutsMatchTheCHeaders() throws Exception {
        Require.that(Require.onPath("gcc"), "gcc is not installed: needed for the header check");
        StringBuilder c = new StringBuilder("""
                #define _GNU_SOURCE
                #include <signal.h>
                #include <poll.h>
                #include <stddef.h>
                #include <stdio.h>
                #include <sys/socket.h>
                #include <sys/uio.h>
                int main(void) {
                    printf("sigset_t %zu\\n", sizeof(sigset_t));
                """);
        Map<String, Long> expected = new TreeMap<>();
        expected.put("sigset_t", Libc.SIGSET_SIZE);
        STRUCTS.forEach((name, layout) -> {
            c.append("    printf(\"%s %zu\\n\", \"").append(name).append("\", sizeof(struct ").append(name).append("));\n");
            expected.put(name, layout.byteSize());
            for (MemoryLayout m : layout.memberLayouts()) {
                if (m instanceof PaddingLayout) {
                    continue;
                }
                String field = m.name().orElseThrow();
                c.append("    printf(\"%s %zu\\n\", \"").append(name).append('.').append(field)
                        .append("\", offsetof(struct ").append(name).append(", ").append(field).append("));\n");
                expected.put(name + "." + field, layout.byteOffset(MemoryLayout.PathElement.groupElement(field)));
            }
        });
        c.append("    return 0;\n}\n");
        Map<String, Long> actual = new TreeMap<>();
        CProbe.printed(Path.of("target", "sys-header-check"), "sys_layout", c)
                .forEach((name, value) -> actual.put(name, Long.parseLong(value)));
        assertThat(actual).isEqualTo(expected);
    }
}
