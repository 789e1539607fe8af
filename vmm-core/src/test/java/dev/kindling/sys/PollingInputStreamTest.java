package dev.kindling.sys;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class PollingInputStreamTest {
    private final Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
    private final Arena arena = Arena.ofConfined();

    @AfterEach
    void close() {
        pair[0].close();
        pair[1].close();
        arena.close();
    }

    private void send(String s) {
        Libc.write(pair[1], arena.allocateFrom(s, UTF_8), s.length());
    }

    @Test
    void readsWhatTheDescriptorHasAndEndsAtItsEnd() throws Exception {
        try (PollingInputStream in = new PollingInputStream(pair[0])) {
            send("abc");
            byte[] b = new byte[8];
            assertThat(in.read(b, 0, 8)).isEqualTo(3);
            assertThat(new String(b, 0, 3, UTF_8)).isEqualTo("abc");
            send("d");
            assertThat(in.read()).isEqualTo('d');
            pair[1].close();
            assertThat(in.read(b, 0, 8)).isEqualTo(-1);
        }
    }

    @Test
    void closeFromAnotherThreadEndsABlockedReadAndLaterInputStaysUnread() throws Exception {
        PollingInputStream in = new PollingInputStream(pair[0]);
        CompletableFuture<Integer> result = new CompletableFuture<>();
        Thread reader = new Thread(() -> {
            try {
                result.complete(in.read(new byte[8], 0, 8));
            } catch (Exception e) {
                result.completeExceptionally(e);
            }
        }, "polling-reader");
        reader.start();
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!inPoll(reader) && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
        assertThat(inPoll(reader)).as("the reader waits in poll").isTrue();
        in.close();
        assertThat(result.get(10, TimeUnit.SECONDS)).isEqualTo(-1);
        reader.join(10_000);
        assertThat(in.read()).isEqualTo(-1);

        send("next");
        assertThat(Poller.waitReadable(pair[0], 5_000)).isTrue();
        MemorySegment buf = arena.allocate(8);
        long n = Libc.read(pair[0], buf, 8);
        assertThat(new String(buf.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE), UTF_8)).isEqualTo("next");
        assertThat(pair[0].isOpen()).as("the descriptor stays the caller's").isTrue();
    }

    private static boolean inPoll(Thread t) {
        for (StackTraceElement e : t.getStackTrace()) {
            if (e.getClassName().equals(Poller.class.getName()) && e.getMethodName().equals("waitAny")) {
                return true;
            }
        }
        return false;
    }
}
