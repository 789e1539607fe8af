package dev.kindling.microvm;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.MatchResult;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The console as the serial port's output thread drives it: through its sink, one chunk at a time. */
@Timeout(30)
class ConsoleTest {
    private final ByteArrayOutputStream forwarded = new ByteArrayOutputStream();
    private final Console console = new Console(forwarded);

    private void write(String s) throws IOException {
        console.sink().write(s.getBytes(UTF_8));
    }

    /** Writes {@code text} byte by byte from another thread, as a guest does, once the test waits. */
    private CompletableFuture<Void> writeSlowly(String text) {
        return CompletableFuture.runAsync(() -> {
            try {
                for (byte b : text.getBytes(UTF_8)) {
                    console.sink().write(b);
                }
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
    }

    @Test
    void keepsAndForwardsWhatTheGuestWrote() throws IOException {
        write("hello ");
        write("w\u00f6rld\n");
        assertThat(console.text()).isEqualTo("hello w\u00f6rld\n");
        assertThat(forwarded.toString(UTF_8)).isEqualTo("hello w\u00f6rld\n");
    }

    @Test
    void keepsTheLastMegabyte() throws IOException {
        byte[] block = new byte[300_000];
        for (int i = 0; i < 5; i++) {
            Arrays.fill(block, (byte) ('a' + i));
            console.sink().write(block);
        }
        String t = console.text();
        assertThat(t).hasSize(Console.CAPACITY);
        assertThat(t).endsWith("e".repeat(300_000)).startsWith("b");
        assertThat(t.chars().filter(c -> c == 'b').count()).isEqualTo(Console.CAPACITY - 900_000);
    }

    @Test
    void aChunkLargerThanTheRingKeepsItsEndAndIsForwardedWhole() throws IOException {
        byte[] big = new byte[Console.CAPACITY + 10];
        Arrays.fill(big, (byte) 'x');
        big[big.length - 1] = 'y';
        console.sink().write(big);
        assertThat(forwarded.size()).isEqualTo(big.length);
        assertThat(console.text()).hasSize(Console.CAPACITY).endsWith("xy");
    }

    @Test
    void awaitTextFindsAMarkerSplitAcrossChunks() throws Exception {
        CompletableFuture<Void> w = writeSlowly("booting...\nlogin: ");
        assertThat(console.awaitText("login: ", Duration.ofSeconds(10))).isTrue();
        w.join();
        assertThat(console.awaitText("login: ", Duration.ZERO)).isTrue(); // already there
        assertThat(console.awaitText("absent", Duration.ofMillis(50))).isFalse();
    }

    @Test
    void awaitTextMatchesAPatternWithinALineIncludingTheOneBeingWritten() throws Exception {
        write("eth0: 10.0.2.15\r\nnext\r\n# ");
        Optional<MatchResult> ip = console.awaitText(Pattern.compile("eth0: (\\S+)$"), Duration.ZERO);
        assertThat(ip).map(m -> m.group(1)).contains("10.0.2.15"); // the \r is not part of the line
        assertThat(console.awaitText(Pattern.compile("^# $"), Duration.ZERO)).isPresent(); // the prompt, without a newline
        assertThat(console.awaitText(Pattern.compile("15next"), Duration.ZERO)).isEmpty(); // lines stay apart
        CompletableFuture<Void> w = writeSlowly("ls\r\nbin  dev  etc\r\n");
        assertThat(console.awaitText(Pattern.compile("\\bdev\\b"), Duration.ofSeconds(10))).isPresent();
        w.join();
    }

    @Test
    void waitsGiveUpOnceTheGuestHasEnded() throws Exception {
        write("partial output");
        CompletableFuture<Boolean> waiting = CompletableFuture.supplyAsync(() -> {
            try {
                return console.awaitText("never", Duration.ofMinutes(5));
            } catch (InterruptedException e) {
                throw new RuntimeException(e);
            }
        });
        console.end();
        assertThat(waiting.get(10, TimeUnit.SECONDS)).isFalse();
        assertThat(console.awaitText(Pattern.compile("never"), Duration.ofMinutes(5))).isEmpty();
        assertThat(console.awaitText("partial", Duration.ofMinutes(5))).isTrue(); // what is there is still found
    }

    @Test
    void followersGetTheHistoryThenEachPieceWithCharactersWhole() throws Exception {
        write("before\n");
        List<String> got = new CopyOnWriteArrayList<>();
        try (Console.Subscription s = console.follow(got::add)) {
            assertThat(got).containsExactly("before\n");
            byte[] euro = "\u20ac".getBytes(UTF_8); // three bytes, delivered one at a time
            for (byte b : euro) {
                console.sink().write(b);
            }
            write("!");
            assertThat(String.join("", got)).isEqualTo("before\n\u20ac!");
            assertThat(got).allSatisfy(piece -> assertThat(piece).doesNotContain("\ufffd"));
        }
        write("after");
        assertThat(String.join("", got)).doesNotContain("after");
    }

    @Test
    void aFollowerThatThrowsIsDroppedAndOutputGoesOn() throws IOException {
        List<String> got = new ArrayList<>();
        console.follow(t -> {
            got.add(t);
            throw new IllegalStateException("consumer bug");
        });
        write("one");
        write("two");
        assertThat(got).containsExactly("one");
        assertThat(console.text()).isEqualTo("onetwo");
    }

    @Test
    void aFailingForwardStreamDoesNotStopTheConsole() throws IOException {
        Console c = new Console(new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                throw new IOException("stdout closed");
            }
        });
        c.sink().write("still ".getBytes(UTF_8));
        c.sink().write("kept".getBytes(UTF_8));
        assertThat(c.text()).isEqualTo("still kept");
    }

    @Test
    void sendNeedsASerialPort() {
        assertThatThrownBy(() -> console.send("x")).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("no ISA serial port");
    }
}
