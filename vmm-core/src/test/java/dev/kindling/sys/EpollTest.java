package dev.kindling.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.testing.HostResources;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class EpollTest {
    @Test
    void reportsTheTokenAndEventsOfEachReadyDescriptor() {
        try (Epoll epoll = Epoll.create(8); EventFd a = EventFd.nonBlocking(); EventFd b = EventFd.nonBlocking();
                EventFd c = EventFd.nonBlocking()) {
            epoll.add(a.fd(), Epoll.EPOLLIN, 10);
            epoll.add(b.fd(), Epoll.EPOLLIN, 20);
            epoll.add(c.fd(), Epoll.EPOLLIN, 0x1_0000_0000_0030L);
            a.signal();
            c.signal();
            assertThat(ready(epoll, 1000)).containsOnly(Map.entry(10L, Epoll.EPOLLIN), Map.entry(0x1_0000_0000_0030L, Epoll.EPOLLIN));

            // level-triggered: still ready until read; a new token comes back after modify
            epoll.modify(a.fd(), Epoll.EPOLLIN, 11);
            assertThat(ready(epoll, 1000)).containsOnlyKeys(11L, 0x1_0000_0000_0030L);
            epoll.remove(c.fd());
            assertThat(ready(epoll, 1000)).containsOnlyKeys(11L);
            a.read();
            assertThat(epoll.wait(0)).isZero();
            b.signal(3);
            assertThat(ready(epoll, 1000)).containsOnly(Map.entry(20L, Epoll.EPOLLIN));
        }
    }

    @Test
    void writableAndHungUpAreReported() {
        Fd[] pair = Libc.socketpair(Libc.SOCK_STREAM);
        try (Epoll epoll = Epoll.create(4); Fd ours = pair[0]; EventFd e = EventFd.nonBlocking()) {
            epoll.add(e.fd(), Epoll.EPOLLOUT, 1);
            epoll.add(ours, Epoll.EPOLLIN | Epoll.EPOLLRDHUP, 2);
            assertThat(ready(epoll, 1000)).containsOnly(Map.entry(1L, Epoll.EPOLLOUT));
            pair[1].close();
            int events = ready(epoll, 1000).get(2L);
            assertThat(events & Epoll.EPOLLRDHUP).isNotZero();
            assertThat(events & Epoll.EPOLLHUP).as("HUP is reported without asking").isNotZero();
            assertThat(events & Epoll.EPOLLERR).isZero();
        }
    }

    @Test
    void aWaitWithNothingReadyTimesOut() {
        try (Epoll epoll = Epoll.create(1); EventFd quiet = EventFd.nonBlocking()) {
            epoll.add(quiet.fd(), Epoll.EPOLLIN, 1);
            long t0 = System.nanoTime();
            assertThat(epoll.wait(200)).isZero();
            assertThat(System.nanoTime() - t0).isGreaterThanOrEqualTo(TimeUnit.MILLISECONDS.toNanos(200));
            assertThatThrownBy(() -> epoll.token(0)).isInstanceOf(IndexOutOfBoundsException.class)
                    .hasMessage("event 0 of 0 ready");
        }
    }

    @Test
    void anotherThreadWakesTheWaiterThroughAnEventFd() throws Exception {
        try (Epoll epoll = Epoll.create(2); EventFd wake = EventFd.nonBlocking()) {
            epoll.add(wake.fd(), Epoll.EPOLLIN, 77);
            CompletableFuture<Long> woken = CompletableFuture.supplyAsync(() -> {
                int n = epoll.wait(30_000);
                return n == 1 ? epoll.token(0) : -n;
            });
            wake.signal();
            assertThat(woken.get(10, TimeUnit.SECONDS)).isEqualTo(77);
        }
    }

    @Test
    void moreReadyThanTheBufferHoldsComeInTurns() {
        try (Epoll epoll = Epoll.create(2); EventFd a = EventFd.nonBlocking(); EventFd b = EventFd.nonBlocking();
                EventFd c = EventFd.nonBlocking()) {
            EventFd[] all = {a, b, c};
            for (int i = 0; i < all.length; i++) {
                epoll.add(all[i].fd(), Epoll.EPOLLIN, i);
                all[i].signal();
            }
            Map<Long, Integer> seen = new HashMap<>();
            for (int round = 0; round < 2; round++) {
                int n = epoll.wait(1000);
                assertThat(n).isBetween(1, 2);
                for (int i = 0; i < n; i++) {
                    seen.put(epoll.token(i), epoll.events(i));
                    all[(int) epoll.token(i)].read();
                }
            }
            assertThat(seen).containsOnlyKeys(0L, 1L, 2L);
        }
    }

    @Test
    void aBadRegistrationNamesBothDescriptors() {
        try (Epoll epoll = Epoll.create(1); EventFd e = EventFd.nonBlocking()) {
            epoll.add(e.fd(), Epoll.EPOLLIN, 1);
            assertThatThrownBy(() -> epoll.add(e.fd(), Epoll.EPOLLIN, 2))
                    .isInstanceOf(SyscallException.class).hasMessage("epoll_ctl(epoll, ADD, eventfd) failed: EEXIST (17)");
            epoll.remove(e.fd());
            assertThatThrownBy(() -> epoll.modify(e.fd(), Epoll.EPOLLIN, 2)).hasMessageContaining("ENOENT");
        }
        assertThatThrownBy(() -> Epoll.create(0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void closingReleasesTheDescriptorAndTheBuffer() {
        try (Epoll warm = Epoll.create(4)) {
            assertThat(warm.capacity()).isEqualTo(4);
        }
        HostResources before = HostResources.now();
        for (int i = 0; i < 100; i++) {
            Epoll epoll = Epoll.create(64);
            epoll.close();
            epoll.close();
            assertThat(epoll.fd().isOpen()).isFalse();
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    private static Map<Long, Integer> ready(Epoll epoll, int timeoutMillis) {
        int n = epoll.wait(timeoutMillis);
        Map<Long, Integer> seen = new HashMap<>();
        for (int i = 0; i < n; i++) {
            seen.put(epoll.token(i), epoll.events(i));
        }
        return seen;
    }
}
