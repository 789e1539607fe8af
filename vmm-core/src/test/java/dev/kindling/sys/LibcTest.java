package dev.kindling.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LibcTest {
    @Test
    void failedCallNamesTheCallAndTheError() {
        assertThatThrownBy(() -> Libc.open("/nonexistent/kindling", Libc.O_RDONLY))
                .isInstanceOf(SyscallException.class)
                .hasMessage("open(/nonexistent/kindling) failed: ENOENT (2)")
                .satisfies(e -> assertThat(((SyscallException) e).errno()).isEqualTo(Errno.ENOENT));
    }

    @Test
    void ioctlOnAnFdThatIsNotADeviceNamesTheRequest() {
        try (EventFd e = EventFd.create()) {
            Ioctl bogus = Ioctl.io("KVM_GET_API_VERSION", 0xAE, 0x00);
            assertThatThrownBy(() -> Libc.ioctl(e.fd(), bogus, 0))
                    .isInstanceOf(SyscallException.class)
                    .hasMessage("ioctl(KVM_GET_API_VERSION) failed: ENOTTY (25)");
        }
    }

    @Test
    void ioctlNumbersEncodeLikeTheKernelMacros() {
        // _IO(0xAE, 0x01) = KVM_CREATE_VM; _IOW(0xAE, 0x46, 32) = KVM_SET_USER_MEMORY_REGION
        assertThat(Ioctl.io("x", 0xAE, 0x01).number()).isEqualTo(0xAE01L);
        assertThat(Ioctl.iow("x", 0xAE, 0x46, 32).number()).isEqualTo(0x4020AE46L);
        assertThat(Ioctl.iowr("x", 0xAE, 0x05, 8).number()).isEqualTo(0xC008AE05L);
        assertThat(Ioctl.ior("x", 0xAE, 0x81, 0x90).number()).isEqualTo(0x8090AE81L);
    }

    @Test
    void fdClosesExactlyOnceAndRefusesUseAfterClose() {
        Fd fd = Fd.adopt(Libc.eventfd(0, 0), "eventfd");
        int n = fd.value();
        fd.close();
        fd.close();
        assertThat(fd.isOpen()).isFalse();
        assertThatThrownBy(fd::value).isInstanceOf(IllegalStateException.class).hasMessageContaining("eventfd is closed");
        assertThat(Files.exists(Path.of("/proc/self/fd/" + n))).isFalse();
    }

    @Test
    void eventfdCountsSignalsAndPollSeesThem() {
        try (EventFd e = EventFd.nonBlocking()) {
            assertThat(e.await(0)).isFalse();
            e.signal();
            e.signal(2);
            assertThat(e.await(0)).isTrue();
            assertThat(e.read()).isEqualTo(3);
            assertThat(e.read()).isZero();
        }
    }

    @Test
    void memfdSharedMappingsSeeEachOthersWrites() {
        try (Fd fd = Fd.adopt(Libc.memfdCreate("kindling-test", 0), "memfd")) {
            Libc.ftruncate(fd, 8192);
            assertThat(Libc.fileSize(fd)).isEqualTo(8192);
            try (Mapping a = Mapping.shared(fd, 0, 8192); Mapping b = Mapping.shared(fd, 0, 8192)) {
                a.segment().set(ValueLayout.JAVA_LONG, 4096, 0x1122334455667788L);
                assertThat(b.segment().get(ValueLayout.JAVA_LONG, 4096)).isEqualTo(0x1122334455667788L);
                assertThatThrownBy(() -> a.segment().get(ValueLayout.JAVA_BYTE, 8192))
                        .isInstanceOf(IndexOutOfBoundsException.class);
            }
        }
    }

    @Test
    void readWritePreadPwriteMoveBytes() {
        try (Fd fd = Fd.adopt(Libc.memfdCreate("rw", 0), "memfd"); Arena arena = Arena.ofConfined()) {
            MemorySegment src = arena.allocateFrom("kindling", StandardCharsets.US_ASCII);
            assertThat(Libc.pwrite(fd, src, 8, 100)).isEqualTo(8);
            MemorySegment dst = arena.allocate(8);
            assertThat(Libc.pread(fd, dst, 8, 100)).isEqualTo(8);
            assertThat(new String(dst.toArray(ValueLayout.JAVA_BYTE), StandardCharsets.US_ASCII)).isEqualTo("kindling");
        }
    }

    @Test
    void socketpairPassesDescriptorsWithScmRights() {
        Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
        try (Fd a = pair[0]; Fd b = pair[1]; EventFd e = EventFd.nonBlocking()) {
            UnixSocket.send(a, new byte[] {42}, List.of(e.fd()));
            UnixSocket.Received got = UnixSocket.receive(b, 16, 4);
            assertThat(got.data()).containsExactly(42);
            assertThat(got.fds()).hasSize(1);
            try (Fd passed = got.fds().getFirst()) {
                assertThat(passed.value()).isNotEqualTo(e.fd().value());
                // the passed descriptor is the same eventfd: a signal through it is seen on ours
                try (Arena arena = Arena.ofConfined()) {
                    Libc.write(passed, arena.allocateFrom(ValueLayout.JAVA_LONG, 5), 8);
                }
                assertThat(e.read()).isEqualTo(5);
            }
        }
    }

    @Test
    void receivingMoreDescriptorsThanAllowedFailsAndLeaksNothing() throws Exception {
        Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
        try (Fd a = pair[0]; Fd b = pair[1]; EventFd e1 = EventFd.create(); EventFd e2 = EventFd.create()) {
            long before = openFds();
            UnixSocket.send(a, new byte[] {1}, List.of(e1.fd(), e2.fd()));
            assertThatThrownBy(() -> UnixSocket.receive(b, 16, 1)).hasMessageContaining("more than 1 descriptors");
            assertThat(openFds()).isEqualTo(before);
        }
    }

    private static long openFds() throws Exception {
        try (var s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    @Test
    void kickedReadStillReturnsTheDataLater() throws Exception {
        try (EventFd e = EventFd.create()) {
            CompletableFuture<Long> read = kickedWhileBlocked(Blocked.READ, e::read);
            e.signal(42);
            assertThat(read.get(10, TimeUnit.SECONDS)).isEqualTo(42);
        }
    }

    @Test
    void kickedPollKeepsWaitingForTheDescriptor() throws Exception {
        try (EventFd e = EventFd.create()) {
            CompletableFuture<Boolean> ready = kickedWhileBlocked(Blocked.POLL, () -> Poller.waitReadable(e.fd(), 60_000));
            e.signal();
            assertThat(ready.get(10, TimeUnit.SECONDS)).isTrue();
        }
    }

    @Test
    void kickedPollWithATimeoutStillWaitsItOut() throws Exception {
        try (EventFd never = EventFd.create()) {
            CompletableFuture<Long> waited = kickedWhileBlocked(Blocked.POLL, () -> {
                long t0 = System.nanoTime();
                assertThat(Poller.waitReadable(never.fd(), 2_000)).isFalse();
                return System.nanoTime() - t0;
            });
            assertThat(waited.get(10, TimeUnit.SECONDS)).isGreaterThanOrEqualTo(TimeUnit.MILLISECONDS.toNanos(2_000));
        }
    }

    @Test
    void kickedRecvmsgStillReceivesTheMessage() throws Exception {
        Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
        try (Fd a = pair[0]; Fd b = pair[1]) {
            CompletableFuture<UnixSocket.Received> got = kickedWhileBlocked(Blocked.RECVMSG, () -> UnixSocket.receive(b, 16, 1));
            UnixSocket.send(a, new byte[] {7}, List.of());
            assertThat(got.get(10, TimeUnit.SECONDS).data()).containsExactly(7);
        }
    }

    @Test
    void kickedEpollWaitKeepsWaitingForTheDescriptor() throws Exception {
        try (Epoll epoll = Epoll.create(1); EventFd e = EventFd.create()) {
            epoll.add(e.fd(), Epoll.EPOLLIN, 5);
            CompletableFuture<Long> ready = kickedWhileBlocked(Blocked.EPOLL_WAIT, () -> epoll.wait(60_000) == 1 ? epoll.token(0) : -1L);
            e.signal();
            assertThat(ready.get(10, TimeUnit.SECONDS)).isEqualTo(5);
        }
    }

    @Test
    void kickedEpollWaitWithATimeoutStillWaitsItOut() throws Exception {
        try (Epoll epoll = Epoll.create(1); EventFd never = EventFd.create()) {
            epoll.add(never.fd(), Epoll.EPOLLIN, 5);
            CompletableFuture<Long> waited = kickedWhileBlocked(Blocked.EPOLL_WAIT, () -> {
                long t0 = System.nanoTime();
                assertThat(epoll.wait(2_000)).isZero();
                return System.nanoTime() - t0;
            });
            assertThat(waited.get(10, TimeUnit.SECONDS)).isGreaterThanOrEqualTo(TimeUnit.MILLISECONDS.toNanos(2_000));
        }
    }

    @Test
    void kickedAcceptStillTakesTheConnection(@TempDir Path dir) throws Exception {
        Path path = dir.resolve("sock");
        try (Fd listening = UnixSocket.listen(path, 1)) {
            CompletableFuture<Fd> accepted = kickedWhileBlocked(Blocked.ACCEPT, () -> UnixSocket.accept(listening));
            try (Fd client = UnixSocket.connect(path); Fd server = accepted.get(10, TimeUnit.SECONDS)) {
                UnixSocket.send(client, new byte[] {9}, List.of());
                assertThat(UnixSocket.receive(server, 4, 0).data()).containsExactly(9);
            }
        }
    }

    /**
     * Runs {@code call} on a kickable thread, waits until it blocks in the system call, kicks it and
     * waits until it has woken up and blocked in the same call again; the caller then lets it finish.
     */
    private static <T> CompletableFuture<T> kickedWhileBlocked(Blocked call, Supplier<T> action) throws Exception {
        CompletableFuture<Long> handle = new CompletableFuture<>();
        CompletableFuture<Path> task = new CompletableFuture<>();
        CompletableFuture<T> result = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                handle.complete(ThreadKick.prepareCurrentThread());
                task.complete(Path.of("/proc").resolve(Files.readSymbolicLink(Path.of("/proc/thread-self"))));
                result.complete(action.get());
            } catch (Throwable e) {
                handle.completeExceptionally(e);
                task.completeExceptionally(e);
                result.completeExceptionally(e);
            }
        }, "blocked-" + call);
        t.setDaemon(true);
        t.start();
        Path proc = task.get(10, TimeUnit.SECONDS);
        awaitTrue(() -> call.in(proc), call + " to block");
        long wakeups = voluntarySwitches(proc);
        assertThat(ThreadKick.kick(handle.get())).isTrue();
        // it woke up (the signal interrupted the call) and went back into the same call
        awaitTrue(() -> result.isDone() || voluntarySwitches(proc) > wakeups && call.in(proc), "the kicked thread to block again");
        assertThat(result).as("the kicked call returned early").isNotDone();
        return result;
    }

    private enum Blocked {
        READ(0), POLL(7, 271), RECVMSG(47), EPOLL_WAIT(232, 281), ACCEPT(43, 288);

        private final int[] syscalls;

        Blocked(int... syscalls) {
            this.syscalls = syscalls;
        }

        /** The thread is blocked in one of our system calls (x86-64 numbers: poll may be ppoll, epoll_wait epoll_pwait). */
        boolean in(Path proc) throws IOException {
            String first = Files.readString(proc.resolve("syscall")).split(" ")[0].trim();
            return Arrays.stream(syscalls).anyMatch(n -> first.equals(Integer.toString(n)));
        }
    }

    private static long voluntarySwitches(Path proc) throws IOException {
        return Files.readAllLines(proc.resolve("status")).stream().filter(l -> l.startsWith("voluntary_ctxt_switches:"))
                .mapToLong(l -> Long.parseLong(l.substring(l.indexOf(':') + 1).trim())).findFirst().orElseThrow();
    }

    private interface Condition {
        boolean holds() throws IOException;
    }

    private static void awaitTrue(Condition c, String what) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!c.holds()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(1);
        }
    }
}
