package dev.kindling.devices.virtio.rng;

import static dev.kindling.devices.virtio.queue.VirtqueueDriver.readable;
import static dev.kindling.devices.virtio.queue.VirtqueueDriver.writable;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.devices.virtio.FakeVirtioContext;
import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.VirtioIds;
import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.devices.virtio.queue.VirtqueueDriver;
import dev.kindling.devices.virtio.queue.VirtqueueDriver.Used;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class VirtioRngTest {
    private static final long FEATURES = VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX | VirtioFeatures.RING_INDIRECT_DESC;
    private static final long WAIT_MS = 5_000;

    private final VirtqueueDriver driver = VirtqueueDriver.create(64, FEATURES);
    private final FakeVirtioContext context = new FakeVirtioContext(FEATURES, List.of(driver));
    private VirtioRng rng;

    @AfterEach
    void tearDown() {
        if (rng != null) {
            rng.close();
        }
        assertThat(context.recordingThreads().alive()).isEmpty();
        context.close();
        driver.close();
    }

    private List<Used> awaitUsed(int n) throws InterruptedException {
        List<Used> all = new ArrayList<>();
        long end = System.nanoTime() + WAIT_MS * 1_000_000;
        while (all.size() < n && System.nanoTime() < end) {
            Optional<Used> u = driver.used();
            if (u.isPresent()) {
                all.add(u.get());
            } else {
                Thread.sleep(1);
            }
        }
        assertThat(all).as("used chains").hasSize(n);
        return all;
    }

    private static boolean untouched(byte[] b) {
        for (byte x : b) {
            if (x != (byte) 0xee) {
                return false;
            }
        }
        return true;
    }

    @Test
    void describesItself() {
        rng = new VirtioRng("rng0");
        assertThat(rng.deviceType()).isEqualTo(VirtioIds.RNG);
        assertThat(rng.queueCount()).isOne();
        assertThat(rng.configSize()).isZero();
        assertThat(rng.rateLimit()).isEmpty();
    }

    @Test
    void fillsEveryWritableBufferOfARequest() throws Exception {
        rng = new VirtioRng("rng0");
        rng.activate(context);
        int a = driver.add(List.of(writable(64)));
        int b = driver.add(List.of(writable(100), writable(28)));
        int c = driver.addIndirect(List.of(writable(5000)));
        context.kick(0);
        List<Used> used = awaitUsed(3);
        assertThat(used).extracting(Used::id).containsExactly(a, b, c);
        assertThat(used).extracting(Used::length).containsExactly(64, 128, 5000);
        for (Used u : used) {
            // 0xee is what the driver wrote; random bytes replace it (a run of 16 0xee would be 2^-128)
            for (int i = 0; i + 16 <= u.written().length; i += 16) {
                assertThat(untouched(Arrays.copyOfRange(u.written(), i, i + 16))).isFalse();
            }
        }
        assertThat(used.get(0).written()).isNotEqualTo(Arrays.copyOf(used.get(1).written(), 64));
        assertThat(context.interrupts(0)).isPositive();
    }

    @Test
    void usesTheSecureRandomItIsGiven() throws Exception {
        SecureRandom fixed = new SecureRandom() {
            private static final long serialVersionUID = 1L;

            @Override
            public void nextBytes(byte[] bytes) {
                Arrays.fill(bytes, (byte) 0x5a);
            }
        };
        rng = new VirtioRng("rng0", fixed, null);
        rng.activate(context);
        driver.add(List.of(writable(10)));
        context.kick(0);
        byte[] expected = new byte[10];
        Arrays.fill(expected, (byte) 0x5a);
        assertThat(awaitUsed(1).get(0).written()).isEqualTo(expected);
    }

    @Test
    void aChainWithReadableBuffersOrAnInvalidOneGetsNothingAndTheNextIsServed() throws Exception {
        rng = new VirtioRng("rng0");
        rng.activate(context);
        int bad = driver.add(List.of(readable("please"), writable(8)));
        int outside = 3;
        driver.rawDescriptor(outside, driver.outsideRam(), 64, Virtqueue.DESC_F_WRITE, 0);
        driver.publishHead(outside);
        int good = driver.add(List.of(writable(16)));
        context.kick(0);
        List<Used> used = awaitUsed(3);
        assertThat(used).extracting(Used::id).containsExactly(bad, outside, good);
        assertThat(used).extracting(Used::length).containsExactly(0, 0, 16);
        assertThat(untouched(used.get(0).written())).isTrue();
        assertThat(context.resets()).isEmpty();
    }

    @Test
    void aBrokenQueueAsksForAReset() throws Exception {
        rng = new VirtioRng("rng0");
        rng.activate(context);
        driver.setAvailIdx(driver.availIdx() + 1000); // more chains than the queue holds
        context.kick(0);
        long end = System.nanoTime() + WAIT_MS * 1_000_000;
        while (context.resets().isEmpty() && System.nanoTime() < end) {
            Thread.sleep(1);
        }
        assertThat(context.resets()).hasSize(1);
    }

    @Test
    void aLargeRequestIsFilledUpToTheLimit() throws Exception {
        rng = new VirtioRng("rng0");
        rng.activate(context);
        driver.add(List.of(writable(VirtioRng.MAX_REQUEST), writable(1000)));
        context.kick(0);
        assertThat(awaitUsed(1).get(0).length()).isEqualTo(VirtioRng.MAX_REQUEST);
    }

    @Test
    void aRateLimitSpreadsRequestsOverTime() throws Exception {
        // 2000 B/s with a 100-byte burst: the first 100 bytes at once, then 100 bytes per 50 ms
        rng = new VirtioRng("rng0", new SecureRandom(), new VirtioRng.RateLimit(2000, 100));
        rng.activate(context);
        long start = System.nanoTime();
        for (int i = 0; i < 5; i++) {
            driver.add(List.of(writable(100)));
        }
        driver.add(List.of(writable(300))); // more than the burst: partly filled
        context.kick(0);
        List<Used> used = awaitUsed(6);
        long millis = (System.nanoTime() - start) / 1_000_000;
        assertThat(used).extracting(Used::length).containsExactly(100, 100, 100, 100, 100, 100);
        assertThat(millis).as("500 bytes beyond the burst at 2000 B/s").isGreaterThanOrEqualTo(240);
    }

    @Test
    void tokenBucketRefillsAtTheRateUpToTheBurst() {
        AtomicLong now = new AtomicLong(0);
        TokenBucket bucket = new TokenBucket(new VirtioRng.RateLimit(1000, 500), now::get);
        assertThat(bucket.take(400)).isEqualTo(400);
        assertThat(bucket.take(200)).as("100 left").isZero();
        assertThat(bucket.millisUntilAvailable(200)).isEqualTo(100);
        now.addAndGet(100_000_000); // 100 ms: +100
        assertThat(bucket.take(200)).isEqualTo(200);
        now.addAndGet(10_000_000_000L); // long idle: capped at the burst
        assertThat(bucket.available()).isEqualTo(500);
        assertThat(bucket.take(2000)).as("a request beyond the burst gets the burst").isEqualTo(500);
        assertThatThrownBy(() -> new VirtioRng.RateLimit(0, 10)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new VirtioRng.RateLimit(10, -1)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void resetJoinsTheThreadEvenWhileARequestWaitsForTheBudget() throws Exception {
        rng = new VirtioRng("rng0", new SecureRandom(), new VirtioRng.RateLimit(1, 1));
        rng.activate(context);
        driver.add(List.of(writable(1)));
        driver.add(List.of(writable(1))); // waits a second for its token
        context.kick(0);
        awaitUsed(1);
        assertThat(context.recordingThreads().alive()).hasSize(1);
        long start = System.nanoTime();
        rng.reset();
        assertThat((System.nanoTime() - start) / 1_000_000).isLessThan(900);
        assertThat(context.recordingThreads().alive()).isEmpty();
    }

    @Test
    void quiescedItServesNothingUntilResumed() throws Exception {
        rng = new VirtioRng("rng0");
        rng.activate(context);
        rng.quiesce();
        driver.add(List.of(writable(8)));
        context.kick(0);
        // the thread is parked: it cannot have taken the chain, whatever the timing
        assertThat(driver.queue().nextAvail()).isZero();
        rng.resume();
        assertThat(awaitUsed(1).get(0).length()).isEqualTo(8);
    }
}
