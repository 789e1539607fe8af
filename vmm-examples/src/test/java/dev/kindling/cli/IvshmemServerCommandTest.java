package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.devices.ivshmem.IvshmemClient;
import dev.kindling.devices.ivshmem.IvshmemMemory;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** {@code kindling ivshmem-server}: its arguments, and a real server that two clients share memory through. */
@Timeout(60)
class IvshmemServerCommandTest {
    @TempDir
    Path tmp;

    @Test
    void sizesTakeKMAndGSuffixes() {
        assertThat(Sizes.parse("--size", "4096")).isEqualTo(4096);
        assertThat(Sizes.parse("--size", "64k")).isEqualTo(64 << 10);
        assertThat(Sizes.parse("--size", "4M")).isEqualTo(4 << 20);
        assertThat(Sizes.parse("--size", "2G")).isEqualTo(2L << 30);
        for (String bad : new String[] {"", "M", "4T", "-1M", "0", "1.5M", "99999999999G"}) {
            assertThatThrownBy(() -> Sizes.parse("--size", bad)).as(bad).isInstanceOf(UsageException.class)
                    .hasMessageStartingWith("--size");
        }
    }

    @Test
    void argumentsAreChecked() {
        assertThat(IvshmemServerCommand.parse(List.of("--socket", "/tmp/s", "--size", "1M")))
                .isEqualTo(new IvshmemServerCommand.Options(Path.of("/tmp/s"), 1 << 20, 1));
        assertThat(IvshmemServerCommand.parse(List.of("--socket", "/tmp/s", "--size", "1M", "--vectors", "4")).vectors())
                .isEqualTo(4);
        assertThatThrownBy(() -> IvshmemServerCommand.parse(List.of("--size", "1M"))).hasMessageContaining("--socket PATH");
        assertThatThrownBy(() -> IvshmemServerCommand.parse(List.of("--socket", "/s"))).hasMessageContaining("--size SIZE");
        assertThatThrownBy(() -> IvshmemServerCommand.parse(List.of("--socket", "/s", "--size", "1M", "x")))
                .hasMessageContaining("no argument 'x'");
    }

    @Test
    void aBadSizeOrVectorCountIsAUsageError() {
        Path socket = tmp.resolve("s.sock");
        for (IvshmemServerCommand.Options o : List.of(new IvshmemServerCommand.Options(socket, 3 << 20, 1),
                new IvshmemServerCommand.Options(socket, 1 << 20, 0))) {
            assertThatThrownBy(() -> IvshmemServerCommand.serve(o, System.out, new CountDownLatch(0)))
                    .isInstanceOf(UsageException.class).hasMessageStartingWith("ivshmem-server: ");
        }
        assertThat(socket).doesNotExist();
    }

    @Test
    void servesPeersUntilStoppedThenRemovesItsSocket() throws Exception {
        Path socket = tmp.resolve("ivshmem.sock");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        CountDownLatch stop = new CountDownLatch(1);
        Thread server = Thread.ofPlatform().start(() -> {
            try {
                IvshmemServerCommand.serve(new IvshmemServerCommand.Options(socket, 1 << 16, 2),
                        new PrintStream(out, true, StandardCharsets.UTF_8), stop);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        try {
            for (int i = 0; i < 500 && out.size() == 0; i++) {
                Thread.sleep(10);
            }
            assertThat(out.toString(StandardCharsets.UTF_8))
                    .isEqualTo("ivshmem-server: listening on " + socket + " size=65536 vectors=2\n");
            try (IvshmemClient a = IvshmemClient.connect(socket); IvshmemClient b = IvshmemClient.connect(socket);
                 IvshmemMemory ma = a.map(); IvshmemMemory mb = b.map()) {
                assertThat(a.vectors()).isEqualTo(2);
                assertThat(a.ownId()).isNotEqualTo(b.ownId());
                ma.segment().set(ValueLayout.JAVA_INT, 64, 0x1234_5678);
                assertThat(mb.segment().get(ValueLayout.JAVA_INT, 64)).as("one memory").isEqualTo(0x1234_5678);
            }
        } finally {
            stop.countDown();
            server.join(TimeUnit.SECONDS.toMillis(10));
        }
        assertThat(server.isAlive()).isFalse();
        assertThat(socket).doesNotExist();
    }
}
