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
 * pollfd, epoll_event, sockaddr_un, stat, sigset_t) and the constants of its calls against the
 * machine's headers: gcc prints sizeof and offsetof of every member, and the value of every constant.
 */
class SysLayoutTest {
    private static final Map<String, StructLayout> STRUCTS = new LinkedHashMap<>();

    static {
        STRUCTS.put("sigaction", Libc.SIGACTION_LAYOUT);
        STRUCTS.put("msghdr", UnixSocket.MSGHDR);
        STRUCTS.put("iovec", IoVec.LAYOUT);
        STRUCTS.put("cmsghdr", UnixSocket.CMSGHDR);
        STRUCTS.put("pollfd", Poller.POLLFD);
        STRUCTS.put("epoll_event", Epoll.EVENT);
        STRUCTS.put("sockaddr_un", UnixSocket.SOCKADDR_UN);
        STRUCTS.put("stat", Libc.STAT_LAYOUT);
    }

    /** The constants of the calls, by their C names. */
    private static final Map<String, Long> CONSTANTS = new LinkedHashMap<>();

    static {
        CONSTANTS.put("O_RDONLY", (long) Libc.O_RDONLY);
        CONSTANTS.put("O_WRONLY", (long) Libc.O_WRONLY);
        CONSTANTS.put("O_RDWR", (long) Libc.O_RDWR);
        CONSTANTS.put("O_CREAT", (long) Libc.O_CREAT);
        CONSTANTS.put("O_EXCL", (long) Libc.O_EXCL);
        CONSTANTS.put("O_CLOEXEC", (long) Libc.O_CLOEXEC);
        CONSTANTS.put("O_NONBLOCK", (long) Libc.O_NONBLOCK);
        CONSTANTS.put("FALLOC_FL_KEEP_SIZE", (long) Libc.FALLOC_FL_KEEP_SIZE);
        CONSTANTS.put("FALLOC_FL_PUNCH_HOLE", (long) Libc.FALLOC_FL_PUNCH_HOLE);
        CONSTANTS.put("FALLOC_FL_ZERO_RANGE", (long) Libc.FALLOC_FL_ZERO_RANGE);
        CONSTANTS.put("LOCK_SH", (long) Libc.LOCK_SH);
        CONSTANTS.put("LOCK_EX", (long) Libc.LOCK_EX);
        CONSTANTS.put("LOCK_NB", (long) Libc.LOCK_NB);
        CONSTANTS.put("LOCK_UN", (long) Libc.LOCK_UN);
        CONSTANTS.put("EWOULDBLOCK", (long) Errno.EAGAIN);
        CONSTANTS.put("S_IFMT", (long) Libc.S_IFMT);
        CONSTANTS.put("S_IFBLK", (long) Libc.S_IFBLK);
        CONSTANTS.put("BLKGETSIZE64", Libc.BLKGETSIZE64.number());
        CONSTANTS.put("IOV_MAX", (long) IoVec.MAX);
        CONSTANTS.put("EPOLL_CLOEXEC", (long) Libc.EPOLL_CLOEXEC);
        CONSTANTS.put("EPOLL_CTL_ADD", (long) Libc.EPOLL_CTL_ADD);
        CONSTANTS.put("EPOLL_CTL_DEL", (long) Libc.EPOLL_CTL_DEL);
        CONSTANTS.put("EPOLL_CTL_MOD", (long) Libc.EPOLL_CTL_MOD);
        CONSTANTS.put("EPOLLIN", (long) Epoll.EPOLLIN);
        CONSTANTS.put("EPOLLOUT", (long) Epoll.EPOLLOUT);
        CONSTANTS.put("EPOLLERR", (long) Epoll.EPOLLERR);
        CONSTANTS.put("EPOLLHUP", (long) Epoll.EPOLLHUP);
        CONSTANTS.put("EPOLLRDHUP", (long) Epoll.EPOLLRDHUP);
        CONSTANTS.put("AF_UNIX", (long) Libc.AF_UNIX);
        CONSTANTS.put("SOCK_STREAM", (long) Libc.SOCK_STREAM);
        CONSTANTS.put("SOCK_CLOEXEC", (long) Libc.SOCK_CLOEXEC);
        CONSTANTS.put("MAP_PRIVATE", (long) Libc.MAP_PRIVATE);
        CONSTANTS.put("MAP_NORESERVE", (long) Libc.MAP_NORESERVE);
        CONSTANTS.put("MFD_ALLOW_SEALING", (long) Libc.MFD_ALLOW_SEALING);
        CONSTANTS.put("F_DUPFD_CLOEXEC", 1030L);
        CONSTANTS.put("F_ADD_SEALS", 1033L);
        CONSTANTS.put("F_GET_SEALS", 1034L);
        CONSTANTS.put("F_SEAL_SEAL", (long) Libc.F_SEAL_SEAL);
        CONSTANTS.put("F_SEAL_SHRINK", (long) Libc.F_SEAL_SHRINK);
        CONSTANTS.put("F_SEAL_GROW", (long) Libc.F_SEAL_GROW);
        CONSTANTS.put("F_SEAL_WRITE", (long) Libc.F_SEAL_WRITE);
        CONSTANTS.put("SEEK_SET", (long) Libc.SEEK_SET);
        CONSTANTS.put("SEEK_END", (long) Libc.SEEK_END);
        CONSTANTS.put("SEEK_DATA", (long) Libc.SEEK_DATA);
        CONSTANTS.put("SEEK_HOLE", (long) Libc.SEEK_HOLE);
        CONSTANTS.put("FICLONE", Libc.FICLONE.number());
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
                #include <sys/epoll.h>
                #include <sys/file.h>
                #include <sys/stat.h>
                #include <sys/un.h>
                #include <errno.h>
                #include <fcntl.h>
                #include <limits.h>
                #include <linux/fs.h>
                #include <sys/mman.h>
                #include <unistd.h>
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
        CONSTANTS.forEach((name, value) -> {
            c.append("    printf(\"%s %ld\\n\", \"").append(name).append("\", (long) (").append(name).append("));\n");
            expected.put(name, value);
        });
        c.append("    return 0;\n}\n");
        Map<String, Long> actual = new TreeMap<>();
        CProbe.printed(Path.of("target", "sys-header-check"), "sys_layout", c)
                .forEach((name, value) -> actual.put(name, Long.parseLong(value)));
        assertThat(actual).isEqualTo(expected);
    }
}
