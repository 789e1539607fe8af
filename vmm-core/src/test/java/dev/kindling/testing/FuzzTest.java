package dev.kindling.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class FuzzTest {
    private static final Duration LONG = Duration.ofMinutes(1);

    @Test
    void aFailingPropertyReportsItsSeedAndTryAndKeepsTheCause() {
        List<Integer> seen = new ArrayList<>();
        Fuzz fuzz = Fuzz.of(Map.of(Fuzz.SEED_VARIABLE, "0x1234abcd"));
        assertThatThrownBy(() -> fuzz.run("probe", 1000, LONG, g -> {
            int v = g.between(0, 99);
            seen.add(v);
            assertThat(v).isNotEqualTo(7);
        }))
                .isInstanceOf(AssertionError.class)
                .hasMessageContaining("probe failed at try " + (seen.size() - 1) + " (")
                .hasMessageContaining("KINDLING_FUZZ_SEED=0x1234abcd")
                .cause().isInstanceOf(AssertionError.class);
        assertThat(seen.getLast()).isEqualTo(7);
    }

    @Test
    void theSameSeedReplaysTheSameValues() {
        Fuzz fuzz = Fuzz.of(Map.of(Fuzz.SEED_VARIABLE, "-42"));
        List<Long> first = new ArrayList<>();
        List<Long> second = new ArrayList<>();
        Fuzz.Run a = fuzz.run("a", 50, LONG, g -> first.add(g.anyLong()));
        Fuzz.Run b = fuzz.run("b", 50, LONG, g -> second.add(g.anyLong()));
        assertThat(a).isEqualTo(b).isEqualTo(new Fuzz.Run(-42, 50));
        assertThat(first).isEqualTo(second).doesNotHaveDuplicates();
        // a try's values depend on the seed and the index alone
        assertThat(new Gen(Fuzz.trySeed(-42, 17)).anyLong()).isEqualTo(first.get(17));
    }

    @Test
    void withoutASeedEachRunTakesAFreshOne() {
        Fuzz fuzz = Fuzz.of(Map.of());
        List<Long> values = new ArrayList<>();
        Fuzz.Run a = fuzz.run("a", 1, LONG, g -> values.add(g.anyLong()));
        Fuzz.Run b = fuzz.run("b", 1, LONG, g -> values.add(g.anyLong()));
        assertThat(a.seed()).isNotEqualTo(b.seed());
        assertThat(values.get(0)).isNotEqualTo(values.get(1));
        // and the printed seed replays it
        List<Long> replay = new ArrayList<>();
        Fuzz.of(Map.of(Fuzz.SEED_VARIABLE, Fuzz.hex(a.seed()))).run("a", 1, LONG, g -> replay.add(g.anyLong()));
        assertThat(replay).containsExactly(values.get(0));
    }

    @Test
    void theTimeBudgetEndsARunButNotBeforeOneTry() {
        Fuzz.Run run = Fuzz.of(Map.of()).run("slow", 1000, Duration.ZERO, g -> {});
        assertThat(run.tries()).isEqualTo(1);
    }

    @Test
    void triesFromTheEnvironmentReplaceTheCountAndTheBudget() {
        Fuzz.Run run = Fuzz.of(Map.of(Fuzz.TRIES_VARIABLE, "3000")).run("long", 10, Duration.ZERO, g -> {});
        assertThat(run.tries()).isEqualTo(3000);
    }

    @Test
    void badVariablesAreNamed() {
        assertThatThrownBy(() -> Fuzz.of(Map.of(Fuzz.SEED_VARIABLE, "0xzz")))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("KINDLING_FUZZ_SEED");
        assertThatThrownBy(() -> Fuzz.of(Map.of(Fuzz.TRIES_VARIABLE, "0")))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("KINDLING_FUZZ_TRIES");
    }

    @Test
    void rangesAreInclusiveAndWeightsAreFollowed() {
        Gen g = new Gen(1);
        boolean low = false, high = false;
        int[] counts = new int[3];
        for (int i = 0; i < 10_000; i++) {
            int v = g.between(-2, 2);
            assertThat(v).isBetween(-2, 2);
            low |= v == -2;
            high |= v == 2;
            assertThat(g.between(Long.MAX_VALUE - 1, Long.MAX_VALUE)).isGreaterThanOrEqualTo(Long.MAX_VALUE - 1);
            counts[g.weighted(8, 0, 2)]++;
        }
        assertThat(low && high).isTrue();
        assertThat(counts[1]).isZero();
        assertThat(counts[0]).isBetween(7_500, 8_500);
        assertThat(g.list(2, 2, g::bool)).hasSize(2);
    }
}
