package dev.kindling.testing;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Supplier;

/**
 * The values of one try of a {@link Fuzz} property: a thin layer over one {@link SplittableRandom}
 * seeded for that try, so the same seed gives the same values in the same order. Ranges are
 * inclusive at both ends.
 */
public final class Gen {
    private final SplittableRandom random;

    Gen(long seed) {
        this.random = new SplittableRandom(seed);
    }

    public boolean bool() {
        return random.nextBoolean();
    }

    /** True once in {@code n} on average. */
    public boolean oneIn(int n) {
        return random.nextInt(n) == 0;
    }

    public int anyInt() {
        return random.nextInt();
    }

    public long anyLong() {
        return random.nextLong();
    }

    public int between(int min, int max) {
        return (int) between((long) min, max);
    }

    public long between(long min, long max) {
        if (min > max) {
            throw new IllegalArgumentException("empty range [" + min + ", " + max + "]");
        }
        if (max < Long.MAX_VALUE) {
            return random.nextLong(min, max + 1);
        }
        return min == Long.MIN_VALUE ? random.nextLong() : random.nextLong(min - 1, max) + 1;
    }

    /** One of {@code values}, each as likely. */
    public int pickInt(int... values) {
        return values[random.nextInt(values.length)];
    }

    /** One of {@code values}, each as likely. */
    public long pickLong(long... values) {
        return values[random.nextInt(values.length)];
    }

    /** One of {@code values}, each as likely. */
    @SafeVarargs
    public final <T> T pick(T... values) {
        return values[random.nextInt(values.length)];
    }

    /** An index into {@code weights}, each as likely as its weight (a switch on it picks a generator). */
    public int weighted(int... weights) {
        int total = 0;
        for (int w : weights) {
            total += w;
        }
        int at = random.nextInt(total);
        for (int i = 0; ; i++) {
            at -= weights[i];
            if (at < 0) {
                return i;
            }
        }
    }

    /** {@code min} to {@code max} elements, each from {@code element}. */
    public <T> List<T> list(int min, int max, Supplier<T> element) {
        int n = between(min, max);
        List<T> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            out.add(element.get());
        }
        return out;
    }

    /** {@code min} to {@code max} random bytes. */
    public byte[] bytes(int min, int max) {
        byte[] out = new byte[between(min, max)];
        random.nextBytes(out);
        return out;
    }
}
