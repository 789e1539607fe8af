package dev.kindling.devices.virtio.queue;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.kindling.memory.GuestMemory;
import java.util.Optional;

/**
 * Coverage-guided fuzzing of {@link Virtqueue#pop} with Jazzer. A normal build replays the corpus
 * in {@code src/test/resources/.../VirtqueueFuzzTestInputs/pop/}; {@code JAZZER_FUZZ=1} fuzzes for
 * the {@code maxDuration} and writes findings there.
 */
class VirtqueueFuzzTest {
    @FuzzTest(maxDuration = "60s")
    void pop(FuzzedDataProvider data) {
        int size = QueueInput.size(data);
        long features = QueueInput.features(data);
        try (GuestMemory mem = ChainFuzzing.memory(); var driver = ChainFuzzing.on(mem, size, features)) {
            QueueInput.write(data, driver);
            Virtqueue q = driver.queue();
            for (int i = 0; i < size + 2; i++) {
                Optional<DescriptorChain> chain;
                try {
                    chain = q.pop(mem);
                } catch (VirtqueueException.InvalidChain e) {
                    assertThat(e.head()).isBetween(0, size - 1);
                    q.addUsed(mem, e.head(), 0);
                    continue;
                } catch (VirtqueueException.BrokenQueue e) {
                    return;
                } catch (VirtqueueException e) {
                    throw new AssertionError(e);
                }
                if (chain.isEmpty()) {
                    return;
                }
                ChainFuzzing.checkChain(mem, q, chain.get());
                q.addUsed(mem, chain.get().head(), (int) Math.min(chain.get().writableLength(), Integer.MAX_VALUE));
                q.needsNotification(mem);
                q.setNotificationsEnabled(mem, (i & 1) == 0);
            }
        }
    }
}
