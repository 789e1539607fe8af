package dev.kindling.microvm;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.Machine;
import dev.kindling.machine.StopReason;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.Poller;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The console, input and exit reporting of a real microVM, with the {@code serial} test guest: it says
 * "ready", echoes what it gets, floods on 'f' (12000 bytes) or 'F' (96 KiB), says "bye" and resets on 'q'.
 */
@Timeout(300)
class MicrovmConsoleTest {
    private static final Duration WAIT = Duration.ofSeconds(60);
    private static final StopReason RESET = new StopReason.Reset(StopReason.ResetCause.I8042);

    @BeforeEach
    void kvm() {
        TestGuests.assumeKvm();
    }

    private static MicrovmBuilder serialGuest(String name) {
        return Microvm.builder().name(name).memoryMib(16).kernel(TestGuests.elf("serial"));
    }

    /** An output stream that takes nothing until released: the guest's output backs up behind it. */
    private static final class Gate extends OutputStream {
        final CountDownLatch open = new CountDownLatch(1);

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            try {
                open.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Test
    void typedInputIsEchoedAndTheExitIsReportedOnceTheConsoleHasEverything() throws Exception {
        List<String> followed = new CopyOnWriteArrayList<>();
        Microvm vm = serialGuest("echo").build();
        try (vm) {
            assertThat(vm.state()).isEqualTo(Machine.State.CREATED);
            CompletableFuture<StopReason> mine = vm.onExit();
            mine.complete(new StopReason.Stopped()); // a copy: nobody else sees it
            CompletableFuture<StopReason> exit = vm.onExit();
            assertThat(exit).isNotDone();

            vm.console().follow(followed::add);
            vm.start();
            assertThat(vm.console().awaitText("ready\n", WAIT)).isTrue();
            assertThat(vm.state()).isEqualTo(Machine.State.RUNNING);
            vm.console().send("hello, ");
            vm.console().send("\u00e9t\u00e9".getBytes(UTF_8));
            assertThat(vm.console().awaitText("hello, \u00e9t\u00e9", WAIT)).isTrue();
            vm.pause();
            assertThat(vm.state()).isEqualTo(Machine.State.PAUSED);
            vm.resume();
            vm.console().send("q");

            assertThat(vm.awaitExit(WAIT)).contains(RESET);
            assertThat(exit).isCompletedWithValue(RESET);
            assertThat(vm.state()).isEqualTo(Machine.State.STOPPED);
            assertThat(vm.console().text()).isEqualTo("ready\nhello, \u00e9t\u00e9bye\n");
            assertThat(String.join("", followed)).isEqualTo(vm.console().text());
            assertThat(vm.console().awaitText("never written", WAIT)).isFalse(); // at once: the guest has ended
        }
        assertThat(vm.state()).isEqualTo(Machine.State.CLOSED);
    }

    @Test
    void theExitWaitsForTheLastOutputToReachTheConsole() throws Exception {
        Gate gate = new Gate();
        try (Microvm vm = serialGuest("gated").serialOutput(gate).build()) {
            vm.start();
            vm.console().send("fq");
            // the guest ends with 12 KB still in the output buffer, behind the stream that takes nothing
            assertThat(vm.machine().onExit().get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo(RESET);
            CompletableFuture<StopReason> exit = vm.onExit();
            assertThat(exit).isNotDone();
            assertThat(vm.state()).isEqualTo(Machine.State.RUNNING);
            assertThat(vm.console().text()).doesNotContain("bye");
            // awaitExit waits for the console too: as state() says, the guest's end is not complete yet
            assertThat(vm.awaitExit(Duration.ofMillis(100))).isEmpty();

            gate.open.countDown();
            assertThat(exit.get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo(RESET);
            assertThat(vm.state()).isEqualTo(Machine.State.STOPPED);
            assertThat(vm.console().text()).startsWith("ready\nflood 00000\n").contains("flood 00999\n")
                    .endsWith("flooded\nbye\n").hasSize(6 + 12_000 + 8 + 4);
        }
    }

    @Test
    void sendDoesNotWaitForAVcpuHeldByFullOutput() throws Exception {
        Gate gate = new Gate();
        try (Microvm vm = serialGuest("held").serialOutput(gate).build()) {
            vm.start();
            vm.console().send("F");
            // 96 KiB cannot fit the 64 KiB output buffer: the vCPU waits for room inside the UART
            Thread vcpu = thread("held-vcpu-0");
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (vcpu.getState() != Thread.State.WAITING && System.nanoTime() < deadline) {
                Thread.onSpinWait();
            }
            assertThat(vcpu.getState()).isEqualTo(Thread.State.WAITING);
            assertTimeoutPreemptively(Duration.ofSeconds(5), () -> vm.console().send("q"));

            gate.open.countDown();
            assertThat(vm.awaitExit(WAIT)).contains(RESET);
            assertThat(vm.console().text()).contains("flood 08191\n").endsWith("flooded\nbye\n");
        }
    }

    private static Thread thread(String name) {
        return Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().equals(name)).findFirst()
                .orElseThrow(() -> new AssertionError("no thread " + name));
    }

    private static long threadsNamed(String name) {
        return Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().equals(name) && t.isAlive()).count();
    }

    @Test
    void closeEndsTheReadOfADescriptorAndLeavesLaterInputUnread() throws Exception {
        Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
        try (Arena arena = Arena.ofConfined()) {
            long readers = threadsNamed("serial0-in");
            try (Microvm vm = serialGuest("fd-input").serialInputFd(pair[0]).build()) {
                vm.start();
                assertThat(vm.console().awaitText("ready\n", WAIT)).isTrue();
                Libc.write(pair[1], arena.allocateFrom("abc", UTF_8), 3);
                assertThat(vm.console().awaitText("ready\nabc", WAIT)).isTrue();
                assertThat(threadsNamed("serial0-in")).isEqualTo(readers + 1);
            }
            assertThat(threadsNamed("serial0-in")).as("reader threads after close").isEqualTo(readers);

            Libc.write(pair[1], arena.allocateFrom("later", UTF_8), 5);
            assertThat(Poller.waitReadable(pair[0], 5_000)).isTrue();
            MemorySegment buf = arena.allocate(16);
            long n = Libc.read(pair[0], buf, 16);
            assertThat(new String(buf.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE), UTF_8)).isEqualTo("later");
        } finally {
            pair[0].close();
            pair[1].close();
        }
    }
}
