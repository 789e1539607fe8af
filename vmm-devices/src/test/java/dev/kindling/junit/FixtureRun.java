package dev.kindling.junit;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.machine.Machine;
import dev.kindling.microvm.Microvm;
import java.time.Duration;
import java.util.List;
import java.util.Queue;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * Lets the fixture classes of {@link KindlingExtensionTest} run only under its engine test kit (in a
 * plain test run they are disabled), and hands what they saw back to the test: a fixture method takes
 * a {@link Run} parameter and records the guests it was given.
 */
final class FixtureRun implements ExecutionCondition, ParameterResolver {
    static final String RUN = "kindling.test.run";
    /** The runs under way, by id: each test kit run passes its id as a configuration parameter. */
    private static final ConcurrentMap<String, Run> RUNS = new ConcurrentHashMap<>();

    /** A guest as a fixture saw it: where, and the state it was in then. */
    record Seen(String where, Object guest, Machine.State state) {
        Microvm vm() {
            return (Microvm) guest;
        }
    }

    /** One test kit run; {@code parties} fixture methods may wait for each other ({@link #awaitTogether}). */
    static final class Run implements AutoCloseable {
        final String id = UUID.randomUUID().toString();
        private final Queue<Seen> seen = new ConcurrentLinkedQueue<>();
        private final CountDownLatch together;

        private Run(int parties) {
            together = new CountDownLatch(parties);
        }

        void saw(String where, Microvm vm) {
            seen.add(new Seen(where, vm, vm == null ? null : vm.state()));
        }

        List<Seen> seen() {
            return List.copyOf(seen);
        }

        List<Seen> seen(String where) {
            return seen.stream().filter(s -> s.where().equals(where)).toList();
        }

        /** Returns once all parties are here at once: only when the fixture's methods run in parallel. */
        void awaitTogether() throws InterruptedException {
            together.countDown();
            assertThat(together.await(120, TimeUnit.SECONDS)).as("all parallel tests ran at once").isTrue();
        }

        @Override
        public void close() {
            RUNS.remove(id);
        }
    }

    static Run open(int parties) {
        Run r = new Run(parties);
        RUNS.put(r.id, r);
        return r;
    }

    static Run open() {
        return open(1);
    }

    private static Run of(ExtensionContext context) {
        return context.getConfigurationParameter(RUN).map(RUNS::get).orElse(null);
    }

    @Override
    public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
        return of(context) != null ? ConditionEvaluationResult.enabled("under KindlingExtensionTest's test kit")
                : ConditionEvaluationResult.disabled("a fixture of KindlingExtensionTest: it runs only under its test kit");
    }

    @Override
    public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
        return parameter.getParameter().getType() == Run.class;
    }

    @Override
    public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
        return of(context);
    }
}
