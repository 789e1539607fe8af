package dev.kindling.sys;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/** send/recv with the errnos a relay handles as values, shutdown, and O_NONBLOCK on a socketpair. */
class StreamCallsTest {
    @Test
    void aRelaySeesWouldBlockEndOfStreamAndABrokenPipeAsValues() {
        Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
        try (Fd a = pair[0]; Fd b = pair[1]; Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(64);
            assertThat(Libc.recv(b, buf, 64, Libc.MSG_DONTWAIT)).as("nothing sent yet").isEqualTo(-Errno.EAGAIN);
            Libc.setNonBlocking(b, true);
            assertThat(Libc.read(b, buf, 64)).as("read on the non-blocking end").isEqualTo(-Errno.EAGAIN);
            Libc.setNonBlocking(b, false);

            buf.setString(0, "hello");
            assertThat(Libc.send(a, buf, 5, 0)).isEqualTo(5);
            MemorySegment in = arena.allocate(64);
            assertThat(Libc.recv(b, in, 64, Libc.MSG_PEEK)).as("peeked").isEqualTo(5);
            assertThat(Libc.recv(b, in, 64, 0)).isEqualTo(5);
            assertThat(in.getString(0).substring(0, 5)).isEqualTo("hello");

            Libc.shutdown(a, Libc.SHUT_WR);
            assertThat(Libc.recv(b, in, 64, 0)).as("end of stream after the peer's SHUT_WR").isZero();
            assertThat(Libc.send(b, buf, 5, 0)).as("the other direction still works").isEqualTo(5);

            Libc.shutdown(b, Libc.SHUT_RDWR);
            Libc.shutdown(b, Libc.SHUT_RDWR); // ENOTCONN is not an error
            assertThat(Libc.send(b, buf, 5, 0)).as("after its own SHUT_WR: EPIPE, and no SIGPIPE").isEqualTo(-Errno.EPIPE);
        }
    }
}
