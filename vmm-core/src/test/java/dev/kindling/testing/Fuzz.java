package dev.kindling.testing;

import java.security.SecureRandom;
import java.time.Duration;
import java.util.Map;

/**
 * A seeded property harness on plain JUnit: {@link #check} runs a property on fresh random values
 * ({@link Gen}) a bounded number of times, at most {@link #DEFAULT_BUDGET} long. Each try's values
 * come from the base seed and the try's index alone, so a failure, reported with both, replays
 * exactly.
 *
 * <p>The base seed is {@code KINDLING_FUZZ_SEED} (hex with {@code 0x}, or decimal) when set, else
 * random; it is printed either way. {@code KINDLING_FUZZ_TRIES} sets the number of tries of every
 * property and lifts the time budget, for long runs.
 */
public final class Fuzz {
    public static final String SEED_VARIABLE = "KINDLING_FUZZ_SEED";
    public static final String TRIES_VARIABLE = "KINDLING_FUZZ_TRIES";
    public static final int DEFAULT_TRIES = 1000;
    /** A property stops after this long even if tries are left, so that a slow machine keeps the suite short. */
    public static final Duration DEFAULT_BUDGET = Duration.ofSeconds(5);

    private static final long GOLDEN_GAMMA = 0x9e3779b97f4a7c15L;

    /** What is checked on each try; a throw (an assertion failing) fails the property. */
    @FunctionalInterface
    public interface Property {
        void check(Gen gen) throws Exception;
    }

    /** What a run did: its base seed and the tries it made. */
    public record Run(long seed, int tries) {}

    private final Long seed;
    private final Integer tries;

    Fuzz(Long seed, Integer tries) {
        this.seed = seed;
        this.tries = tries;
    }

    static Fuzz of(Map<String, String> env) {
        String s = env.get(SEED_VARIABLE);
        String t = env.get(TRIES_VARIABLE);
        Long seed = s == null || s.isBlank() ? null : parseSeed(s.strip());
        Integer tries = null;
        if (t != null && !t.isBlank()) {
            try {
                tries = Integer.parseInt(t.strip());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(TRIES_VARIABLE + " is not a number: " + t, e);
            }
            if (tries < 1) {
                throw new IllegalArgumentException(TRIES_VARIABLE + " must be at least 1: " + t);
            }
        }
        return new Fuzz(seed, tries);
    }

    private static long parseSeed(String s) {
        try {
            return s.startsWith("0x") || s.startsWith("0X") ? Long.parseUnsignedLong(s.substring(2), 16) : Long.parseLong(s);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(SEED_VARIABLE + " is not a seed (0x and hex digits, or decimal): " + s, e);
        }
    }

    /** {@link #check(String, int, Property)} with {@link #DEFAULT_TRIES}. */
    public static Run check(String name, Property property) {
        return check(name, DEFAULT_TRIES, property);
    }

    /** Runs {@code property} up to {@code tries} times (see the class comment); a failure names the seed and try. */
    public static Run check(String name, int tries, Property property) {
        return of(System.getenv()).run(name, tries, DEFAULT_BUDGET, property);
    }

    Run run(String name, int defaultTries, Duration budget, Property property) {
        long base = seed != null ? seed : new SecureRandom().nextLong();
        int limit = tries != null ? tries : defaultTries;
        long deadline = tries != null ? Long.MAX_VALUE : System.nanoTime() + budget.toNanos();
        System.out.printf("fuzz %s: %s=%s%n", name, SEED_VARIABLE, hex(base));
        int i = 0;
        for (; i < limit && (i == 0 || System.nanoTime() - deadline < 0); i++) {
            try {
                property.check(new Gen(trySeed(base, i)));
            } catch (Exception | AssertionError e) {
                throw new AssertionError(String.format("%s failed at try %d (replay with %s=%s): %s",
                        name, i, SEED_VARIABLE, hex(base), e), e);
            }
        }
        System.out.printf("fuzz %s: %d tries passed%n", name, i);
        return new Run(base, i);
    }

    /** The seed of try {@code index}: a SplitMix64 step from the base, so any try can be had without the others. */
    static long trySeed(long base, int index) {
        long z = base + (index + 1L) * GOLDEN_GAMMA;
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    static String hex(long seed) {
        return "0x" + Long.toHexString(seed);
    }
}
