package dev.kindling.junit;

import static dev.kindling.junit.KindlingAssertions.assertThat;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.Machine;
import dev.kindling.microvm.Microvm;
import dev.kindling.testing.HostResources;
import java.time.Duration;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.reporting.ReportEntry;
import org.junit.platform.testkit.engine.EngineExecutionResults;
import org.junit.platform.testkit.engine.EngineTestKit;
import org.junit.platform.testkit.engine.Event;

/**
 * KindlingExtension under JUnit's own engine (the test kit), on the fixture classes below, which boot
 * the {@code serialhello} guest (it prints "Hello, serial!" and resets: milliseconds, no Linux). The
 * fixtures run only under the kit ({@link FixtureRun}).
 */
@Timeout(300)
class KindlingExtensionTest {
    static final String HELLO_KERNEL = "${kindling.root}/guests/out/serialhello.elf";
    static final String HELLO = "Hello, serial!";
    static final Duration WAIT = Duration.ofSeconds(60);
    static final String MISSING = "/nonexistent/kindling/kernel.elf";

    @BeforeAll
    static void guests() {
        TestGuests.assumeKvm();
        TestGuests.elf("serialhello"); // builds the guests
    }

    private static EngineExecutionResults run(Class<?> fixture, FixtureRun.Run run, Map<String, String> parameters) {
        return EngineTestKit.engine("junit-jupiter").selectors(selectClass(fixture))
                .enableImplicitConfigurationParameters(false)
                .configurationParameter(FixtureRun.RUN, run.id)
                .configurationParameter("kindling.root", TestGuests.root().toString())
                .configurationParameters(parameters)
                .execute();
    }

    private static EngineExecutionResults run(Class<?> fixture, FixtureRun.Run run) {
        return run(fixture, run, Map.of());
    }

    private static Throwable failure(Event e) {
        return e.getRequiredPayload(TestExecutionResult.class).getThrowable().orElseThrow();
    }

    private static List<GuestConsoleOutput> consoles(Throwable t) {
        return Arrays.stream(t.getSuppressed()).filter(GuestConsoleOutput.class::isInstance)
                .map(GuestConsoleOutput.class::cast).toList();
    }

    /** The failure's messages, its causes' and suppressed ones', as a report would print them. */
    private static String report(Throwable t) {
        return Stream.concat(Stream.iterate(t, c -> c != null, Throwable::getCause), Arrays.stream(t.getSuppressed()))
                .map(String::valueOf).collect(Collectors.joining("\n"));
    }

    private static void assertAllClosed(List<FixtureRun.Seen> seen) {
        assertThat(seen).isNotEmpty().allSatisfy(s -> assertThat(s.vm().state()).as(s.where()).isEqualTo(Machine.State.CLOSED));
    }

    private static long distinct(List<FixtureRun.Seen> seen) {
        Set<Object> ids = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        seen.forEach(s -> ids.add(s.guest()));
        return ids.size();
    }

    // ---- a failing test closes its guests, and its report has their consoles

    @ExtendWith({FixtureRun.class, KindlingExtension.class})
    @MicrovmConfig(kernel = HELLO_KERNEL, memoryMib = 16)
    static class Failing {
        Microvm field;

        @Test
        void assertionFails(Microvm vm, FixtureRun.Run run) {
            run.saw("assertionFails", vm);
            run.saw("assertionFails", field);
            assertThat(field.console()).eventuallyContains(HELLO, WAIT);
            assertThat(vm.console()).eventuallyContains(HELLO, WAIT).contains("Goodbye");
        }

        @Test
        void throwsAnException(Microvm vm, FixtureRun.Run run) throws InterruptedException {
            run.saw("throwsAnException", vm);
            run.saw("throwsAnException", field);
            // once they ended, all the guests printed is on their consoles
            assertThat(vm.awaitExit(WAIT)).isPresent();
            assertThat(field.awaitExit(WAIT)).isPresent();
            throw new IllegalStateException("the test's own failure");
        }

        @Test
        void aborted(Microvm vm, FixtureRun.Run run) {
            run.saw("aborted", vm);
            run.saw("aborted", field);
            assumeTrue(false, "aborted on purpose");
        }
    }

    @Test
    void aFailingTestClosesItsGuestsAndItsReportShowsTheirConsoles() {
        try (FixtureRun.Run warmUp = FixtureRun.open()) {
            run(Failing.class, warmUp); // the engine's and KVM's first-use allocations are no leak
        }
        HostResources before = HostResources.now();
        try (FixtureRun.Run run = FixtureRun.open()) {
            EngineExecutionResults results = run(Failing.class, run);
            results.testEvents().assertStatistics(s -> s.started(3).failed(2).aborted(1).succeeded(0));

            List<FixtureRun.Seen> seen = run.seen();
            assertThat(seen).hasSize(6);
            assertThat(distinct(seen)).isEqualTo(6);
            assertAllClosed(seen);

            Throwable assertion = failure(results.testEvents().failed().filter(e -> e.getTestDescriptor()
                    .getDisplayName().startsWith("assertionFails")).findFirst().orElseThrow());
            assertThat(assertion).isInstanceOf(AssertionError.class)
                    .hasMessageContaining("Expecting the guest console to contain").hasMessageContaining("Goodbye")
                    .hasMessageContaining(HELLO); // ConsoleAssert shows the console too
            assertThat(consoles(assertion)).extracting(GuestConsoleOutput::guest)
                    .containsExactlyInAnyOrder("Failing.field", "Failing.assertionFails.arg0");
            // the guests may still be printing the line's end when the test fails
            assertThat(consoles(assertion)).allSatisfy(c -> assertThat(c.text().strip()).isEqualTo(HELLO));

            Throwable own = failure(results.testEvents().failed().filter(e -> e.getTestDescriptor()
                    .getDisplayName().startsWith("throwsAnException")).findFirst().orElseThrow());
            assertThat(own).isInstanceOf(IllegalStateException.class).hasMessage("the test's own failure");
            assertThat(report(own)).contains("console of Failing.throwsAnException.arg0 (last lines):\n" + HELLO);

            Throwable aborted = failure(results.testEvents().aborted().stream().findFirst().orElseThrow());
            assertThat(consoles(aborted)).as("an aborted test is no failure").isEmpty();

            List<Map<String, String>> entries = results.testEvents().reportingEntryPublished()
                    .map(e -> e.getRequiredPayload(ReportEntry.class).getKeyValuePairs()).toList();
            assertThat(entries).flatExtracting(Map::keySet).containsExactlyInAnyOrder(
                    "kindling.console.Failing.field", "kindling.console.Failing.assertionFails.arg0",
                    "kindling.console.Failing.field", "kindling.console.Failing.throwsAnException.arg0");
            assertThat(entries).flatExtracting(Map::values).allSatisfy(v -> assertThat(v).contains(HELLO));
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @ExtendWith({FixtureRun.class, KindlingExtension.class})
    @MicrovmConfig(kernel = HELLO_KERNEL, memoryMib = 16)
    static class FailingAfterEach {
        Microvm vm;

        @Test
        void passes(FixtureRun.Run run) {
            run.saw("passes", vm);
            assertThat(vm.console()).eventuallyContains(HELLO, WAIT);
        }

        @AfterEach
        void fails() {
            throw new IllegalStateException("@AfterEach fails");
        }
    }

    @Test
    void aFailingLifecycleMethodGetsTheConsoleToo() {
        try (FixtureRun.Run run = FixtureRun.open()) {
            EngineExecutionResults results = run(FailingAfterEach.class, run);
            results.testEvents().assertStatistics(s -> s.started(1).failed(1));
            Throwable t = failure(results.testEvents().failed().stream().findFirst().orElseThrow());
            assertThat(t).hasMessage("@AfterEach fails");
            assertThat(consoles(t)).singleElement().satisfies(c -> {
                assertThat(c.guest()).isEqualTo("FailingAfterEach.vm");
                assertThat(c.text()).isEqualTo(HELLO + "\n");
            });
            assertAllClosed(run.seen());
        }
    }

    // ---- parallel execution

    static final int PARALLEL = 4;

    @ExtendWith({FixtureRun.class, KindlingExtension.class})
    @MicrovmConfig(kernel = HELLO_KERNEL, memoryMib = 16)
    static class Parallel {
        Microvm field;

        private void check(String name, Microvm vm, FixtureRun.Run run) throws InterruptedException {
            run.saw(name, vm);
            run.saw(name, field);
            run.awaitTogether(); // all four tests, and their eight guests, at once
            assertThat(vm.console()).eventuallyContains(HELLO, WAIT);
            assertThat(field.console()).eventuallyContains(HELLO, WAIT);
            assertThat(vm.state()).isNotEqualTo(Machine.State.CLOSED);
        }

        @Test
        void one(Microvm vm, FixtureRun.Run run) throws InterruptedException {
            check("one", vm, run);
        }

        @Test
        void two(Microvm vm, FixtureRun.Run run) throws InterruptedException {
            check("two", vm, run);
        }

        @Test
        void three(Microvm vm, FixtureRun.Run run) throws InterruptedException {
            check("three", vm, run);
        }

        @Test
        void four(Microvm vm, FixtureRun.Run run) throws InterruptedException {
            check("four", vm, run);
        }
    }

    @Test
    void testsRunInParallelEachWithItsOwnGuests() {
        try (FixtureRun.Run run = FixtureRun.open(PARALLEL)) {
            EngineExecutionResults results = run(Parallel.class, run, Map.of(
                    "junit.jupiter.execution.parallel.enabled", "true",
                    "junit.jupiter.execution.parallel.mode.default", "concurrent",
                    "junit.jupiter.execution.parallel.config.strategy", "fixed",
                    "junit.jupiter.execution.parallel.config.fixed.parallelism", String.valueOf(PARALLEL)));
            results.testEvents().assertStatistics(s -> s.started(PARALLEL).succeeded(PARALLEL));
            List<FixtureRun.Seen> seen = run.seen();
            assertThat(seen).hasSize(2 * PARALLEL);
            assertThat(distinct(seen)).isEqualTo(2 * PARALLEL);
            assertAllClosed(seen);
        }
    }

    // ---- a static field is the class's, an instance field or a parameter the test's

    @ExtendWith({FixtureRun.class, KindlingExtension.class})
    @MicrovmConfig(kernel = HELLO_KERNEL, memoryMib = 16)
    static class Shared {
        static Microvm shared;
        Microvm fresh;

        @BeforeAll
        static void beforeAll(FixtureRun.Run run) {
            run.saw("beforeAll", shared);
        }

        @Test
        void first(Microvm param, FixtureRun.Run run) {
            run.saw("static", shared);
            run.saw("field", fresh);
            run.saw("param", param);
        }

        @Test
        void second(Microvm param, FixtureRun.Run run) {
            run.saw("static", shared);
            run.saw("field", fresh);
            run.saw("param", param);
        }

        @AfterAll
        static void afterAll(FixtureRun.Run run) {
            run.saw("afterAll", shared);
        }
    }

    @Test
    void aStaticFieldIsSharedByTheClassAndInstanceFieldsAndParametersAreFreshPerTest() {
        try (FixtureRun.Run run = FixtureRun.open()) {
            run(Shared.class, run).testEvents().assertStatistics(s -> s.started(2).succeeded(2));

            List<FixtureRun.Seen> shared = Stream.of("beforeAll", "static", "afterAll").flatMap(w -> run.seen(w).stream()).toList();
            assertThat(shared).hasSize(4);
            assertThat(distinct(shared)).as("one static instance, from @BeforeAll to @AfterAll").isEqualTo(1);
            assertThat(shared).allSatisfy(s -> assertThat(s.state()).as(s.where()).isNotEqualTo(Machine.State.CLOSED));

            List<FixtureRun.Seen> perTest = Stream.of("field", "param").flatMap(w -> run.seen(w).stream()).toList();
            assertThat(perTest).hasSize(4).allSatisfy(s -> assertThat(s.guest()).isNotSameAs(shared.getFirst().guest()));
            assertThat(distinct(perTest)).as("a fresh instance per field and parameter per test").isEqualTo(4);
            assertAllClosed(run.seen());
        }
    }

    // ---- bad configurations fail clearly and leave nothing

    @ExtendWith({FixtureRun.class, KindlingExtension.class})
    @MicrovmConfig(kernel = HELLO_KERNEL, memoryMib = 16)
    static class BadParameter {
        Microvm good;

        @BeforeEach
        void seen(FixtureRun.Run run) {
            run.saw("good", good); // booted before the parameter fails
        }

        @Test
        void missingKernel(@MicrovmConfig(kernel = MISSING) Microvm vm) {
        }

        @Test
        void unknownPlaceholder(@MicrovmConfig(kernel = "${kindling.no.such.property}/kernel.elf") Microvm vm) {
        }

        @Test
        void wrongAnnotation(@SandboxConfig Microvm vm) {
        }

        @Test
        void badMemory(@MicrovmConfig(kernel = HELLO_KERNEL, memoryMib = 0) Microvm vm) {
        }
    }

    @ExtendWith({FixtureRun.class, KindlingExtension.class})
    @MicrovmConfig(kernel = HELLO_KERNEL, memoryMib = 16)
    static class BadStaticField {
        @MicrovmConfig(kernel = MISSING)
        static Microvm bad;

        @Test
        void neverRuns() {
        }
    }

    @Test
    void aBadConfigurationFailsWithAClearMessageAndLeavesNothing() {
        try (FixtureRun.Run warmUp = FixtureRun.open()) {
            run(BadParameter.class, warmUp);
        }
        HostResources before = HostResources.now();
        try (FixtureRun.Run run = FixtureRun.open()) {
            EngineExecutionResults results = run(BadParameter.class, run);
            results.testEvents().assertStatistics(s -> s.started(4).failed(4));
            Map<String, String> reports = results.testEvents().failed().stream().collect(Collectors.toMap(
                    e -> e.getTestDescriptor().getDisplayName().replaceAll("\\(.*", ""), e -> report(failure(e))));
            assertThat(reports.get("missingKernel"))
                    .contains("@MicrovmConfig of BadParameter.missingKernel.arg0: kernel " + MISSING + " does not exist");
            assertThat(reports.get("unknownPlaceholder")).contains("${kindling.no.such.property} is neither a configuration "
                    + "parameter, a system property nor an environment variable");
            assertThat(reports.get("wrongAnnotation"))
                    .contains("BadParameter.wrongAnnotation.arg0 is a Microvm but has @SandboxConfig: use @MicrovmConfig");
            assertThat(reports.get("badMemory")).contains("@MicrovmConfig of BadParameter.badMemory.arg0: memory must be at least 1 MiB, got 0 MiB");
            assertThat(run.seen("good")).hasSize(4);
            assertAllClosed(run.seen());

            EngineExecutionResults statics = run(BadStaticField.class, run);
            statics.testEvents().assertStatistics(s -> s.started(0));
            assertThat(statics.containerEvents().failed().stream().map(e -> report(failure(e))))
                    .singleElement().asString()
                    .contains("@MicrovmConfig of BadStaticField.bad: kernel " + MISSING + " does not exist");
        }
        HostResources.now().assertNothingLeftSince(before);
    }
}
