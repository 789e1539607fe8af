package dev.kindling.memory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;

/**
 * The child JVM of {@link GuestMemoryCloseStressTest}: closes guest memory while threads hammer it,
 * round after round, for a bounded time and number of rounds. The same hammer threads serve every
 * round, so their loops are compiled and many closes land inside an access. A racing access that
 * touches unmapped memory kills this JVM (SIGSEGV), which the parent sees as a failed child. Prints
 * the rounds and exits 0 if every hammer was refused with an exception each round; also prints how
 * many reads found the zero placeholder that stands in for closed memory (late accesses that the
 * JDK's close let through, each a crash had the memory been unmapped).
 *
 * <p>Rounds are handed over by spinning on volatile counters, not by locks: the JDK may deliver its
 * refusal (an asynchronous exception) a little after the access it was meant for, and a lock or a
 * barrier left half-way by it would break the harness, not the code under test.
 */
final class CloseRaceChild {
    private static final int HAMMERS = 2;
    private static final byte FILL = 0x5a;
    private static final long WAIT_NANOS = TimeUnit.SECONDS.toNanos(30);

    private final AtomicLong accesses = new AtomicLong();
    private final AtomicInteger refused = new AtomicInteger();
    /** Reads that found zeros where the memory held {@link #FILL}: made after close, from its placeholder. */
    private final AtomicLong lateReads = new AtomicLong();
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private volatile GuestMemory memory;
    private volatile int round;
    private volatile boolean done;

    private CloseRaceChild() {}

    public static void main(String[] args) throws Exception {
        CloseRaceChild c = new CloseRaceChild();
        int rounds = c.run(Long.parseLong(args[0]), Integer.parseInt(args[1]));
        System.out.println("CLOSE-RACE-ROUNDS " + rounds + " LATE-READS " + c.lateReads.get());
    }

    private int run(long seconds, int maxRounds) throws InterruptedException {
        List<Thread> hammers = new ArrayList<>();
        for (int h = 0; h < HAMMERS; h++) {
            Thread t = new Thread(this::hammer, "hammer-" + h);
            t.setDaemon(true);
            t.start();
            hammers.add(t);
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        int rounds = 0;
        while (rounds < maxRounds && System.nanoTime() < deadline) {
            GuestMemory m = new GuestMemory(List.of(
                    MemoryRegion.anonymous(0, 0x10000),
                    MemoryRegion.memfd("close-race", 0x100000, 0x10000)));
            m.slice(0x100000, 0x10000).fill(FILL);
            memory = m;
            long before = accesses.get();
            round = rounds + 1;
            // vary the moment of close relative to the hammers' loops
            long wanted = before + HAMMERS + (rounds * 7919L) % 64;
            awaitUntil(() -> accesses.get() >= wanted, "hammers get going in round " + rounds);
            m.close();
            int r = rounds;
            awaitUntil(() -> refused.get() == HAMMERS * (r + 1) || failure.get() != null, "hammers refused in round " + rounds);
            if (failure.get() != null) {
                System.out.println("round " + rounds + ": a hammer ended with " + failure.get());
                failure.get().printStackTrace(System.out);
                System.exit(2);
            }
            rounds++;
        }
        done = true;
        for (Thread t : hammers) {
            t.join(TimeUnit.NANOSECONDS.toMillis(WAIT_NANOS));
        }
        return rounds;
    }

    private static void awaitUntil(BooleanSupplier c, String what) {
        long limit = System.nanoTime() + WAIT_NANOS;
        while (!c.getAsBoolean()) {
            if (System.nanoTime() > limit) {
                System.out.println("timed out waiting for " + what);
                System.exit(3);
            }
            Thread.onSpinWait();
        }
    }

    private void hammer() {
        int served = 0;
        while (!done) {
            try {
                if (round == served) {
                    Thread.yield();
                    continue;
                }
                served = round;
                hammerUntilRefused(memory);
                refused.incrementAndGet();
            } catch (Throwable late) {
                // a refusal delivered late, outside the access it was for (see the class comment)
                if (!isRefusal(late)) {
                    failure.compareAndSet(null, late);
                }
            }
        }
    }

    private static boolean isRefusal(Throwable t) {
        return t instanceof IllegalStateException || t.getClass().getName().endsWith("ScopedAccessError");
    }

    /** Accesses until refused. */
    private void hammerUntilRefused(GuestMemory m) {
        try {
            MemorySegment early = m.slice(0x100000, 0x10000);
            byte[] buf = new byte[256];
            long sum = 0;
            for (long i = 0; ; i++) {
                long gpa = (i * 64) & 0xffc0;
                m.write32(gpa, (int) i);
                sum += m.read64(gpa);
                m.read(0x100000 + (gpa & 0xff00), buf);
                if (buf[0] == 0) {
                    lateReads.incrementAndGet();
                }
                m.slice(gpa, 64).fill((byte) i);
                // a loop over an early slice: the liveness check can be hoisted out of it
                for (long off = 0; off < 0x1000; off += 8) {
                    long v = early.get(ValueLayout.JAVA_LONG, off);
                    if (v == 0) {
                        lateReads.incrementAndGet();
                    }
                    sum += v;
                }
                // a bulk compare loops inside one scoped access (region 2 holds only FILL: no early exit)
                sum += MemorySegment.mismatch(early, 0, 0x8000, early, 0x8000, 0x10000);
                accesses.incrementAndGet();
                if (sum == 42) {
                    System.out.print("");
                }
            }
        } catch (Throwable t) {
            if (!isRefusal(t)) {
                failure.compareAndSet(null, t);
            }
        }
    }
}
