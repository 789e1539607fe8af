package dev.kindling.junit;

import dev.kindling.microvm.ConfigException;
import dev.kindling.microvm.Console;
import dev.kindling.microvm.Microvm;
import dev.kindling.microvm.MicrovmBuilder;
import dev.kindling.sandbox.Sandbox;
import dev.kindling.sandbox.SandboxSnapshot;
import java.lang.annotation.Annotation;
import java.lang.reflect.AnnotatedElement;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.InaccessibleObjectException;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.Optional;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionConfigurationException;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ExtensionContext.Namespace;
import org.junit.jupiter.api.extension.LifecycleMethodExecutionExceptionHandler;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;
import org.junit.platform.commons.support.HierarchyTraversalMode;
import org.junit.platform.commons.support.ReflectionSupport;
import org.opentest4j.TestAbortedException;

/**
 * JUnit 5 extension: injects booted {@link Sandbox} and started {@link Microvm} instances into test
 * method parameters and fields, closes them, and shows their consoles when a test fails.
 *
 * <pre>{@code
 * @ExtendWith(KindlingExtension.class)
 * @SandboxConfig(memoryMib = 256)
 * class MyTest {
 *     static Sandbox shared;                       // one for the class: started before all, closed after all
 *     @SandboxConfig(vcpus = 2) Sandbox mine;       // a fresh one for each test
 *
 *     @Test
 *     void runs(Microvm vm) {                       // a fresh one for this test
 *         assertThat(vm.console()).eventuallyContains("login:", Duration.ofSeconds(60));
 *     }
 * }
 * }</pre>
 *
 * <ul>
 *   <li>Every non-final field of type {@code Sandbox} or {@code Microvm} is injected, and every such
 *       parameter of a test, lifecycle method or constructor. The configuration is the
 *       {@link SandboxConfig} / {@link MicrovmConfig} on the field or parameter, else on the method,
 *       else on the test class (its superclasses, then its enclosing classes), else the defaults.
 *   <li>A static field gets one instance for its class, created before {@code @BeforeAll} methods and
 *       closed after {@code @AfterAll} methods. An instance field gets a fresh one before each test
 *       (before {@code @BeforeEach} methods), a parameter a fresh one for that call; both are closed
 *       after the test and its {@code @AfterEach} methods, whether it failed or not, newest first. They
 *       are also held in JUnit's store, which closes whatever is left when the test's context ends.
 *   <li>A {@code Sandbox} is a clone unless its {@link SandboxConfig#fromSnapshot()} says otherwise: the
 *       first one of each configuration boots a sandbox and snapshots it, once for the whole test run
 *       (the root context's store holds the snapshot and closes it at the end); every field and
 *       parameter then gets its own clone, which starts without booting a kernel.
 *   <li>When a test or one of its lifecycle methods fails (an aborted test is no failure), the end of
 *       each console its guests printed ({@link GuestConsoleOutput#TAIL_LINES} lines) is added to the
 *       failure as a suppressed {@link GuestConsoleOutput}, and published as the report entry
 *       {@code kindling.console.<guest>}.
 *   <li>Paths in the annotations may name {@code ${name}}: a JUnit configuration parameter (or
 *       system property), else an environment variable. Relative paths resolve against the working
 *       directory.
 *   <li>Safe under JUnit's parallel execution: the extension keeps no state of its own, only JUnit's
 *       per-context stores, so tests that run at once each get their own guests.
 * </ul>
 *
 * <p>Field injection sets fields reflectively: under the module path the test's package must be open
 * to {@code dev.kindling.devices} (as it must be to JUnit for its test methods).
 */
public final class KindlingExtension implements BeforeAllCallback, AfterAllCallback, BeforeEachCallback,
        AfterEachCallback, ParameterResolver, TestExecutionExceptionHandler, LifecycleMethodExecutionExceptionHandler {
    private static final Namespace NAMESPACE = Namespace.create(KindlingExtension.class);
    private static final Pattern PLACEHOLDER = Pattern.compile("\\$\\{([^}]+)}");
    /** The name of the sandbox each snapshot is taken of, and so of its clones. */
    private static final String SNAPSHOT_NAME = "kindling-junit";

    /** The annotations' defaults, for an element and class without one. */
    @SandboxConfig
    @MicrovmConfig
    private static final class Defaults {
    }

    /** One instance serves every test class (JUnit caches it); all state is in the contexts' stores. */
    public KindlingExtension() {
    }

    // ---- fields

    @Override
    public void beforeAll(ExtensionContext context) {
        injectFields(context, context.getRequiredTestClass(), null);
    }

    @Override
    public void beforeEach(ExtensionContext context) {
        // the enclosing instances of a @Nested test too: their instance fields are fresh per test as well
        for (Object instance : context.getRequiredTestInstances().getAllInstances()) {
            injectFields(context, instance.getClass(), instance);
        }
    }

    @Override
    public void afterEach(ExtensionContext context) {
        closeGuestsOf(context);
    }

    @Override
    public void afterAll(ExtensionContext context) {
        closeGuestsOf(context);
    }

    /** The static fields of {@code type} (instance == null) or the instance fields of {@code instance}. */
    private static void injectFields(ExtensionContext context, Class<?> type, Object instance) {
        boolean statics = instance == null;
        List<Field> fields = ReflectionSupport.findFields(type,
                f -> Modifier.isStatic(f.getModifiers()) == statics && Kind.of(f.getType()) != null,
                HierarchyTraversalMode.TOP_DOWN);
        for (Field field : fields) {
            Kind kind = Kind.of(field.getType());
            String name = field.getDeclaringClass().getSimpleName() + "." + field.getName();
            Annotation config = config(kind, field, name, null, type);
            if (Modifier.isFinal(field.getModifiers())) {
                if (field.isAnnotationPresent(kind.annotation)) {
                    throw new ExtensionConfigurationException("field " + name + " is final: "
                            + kind.annotation.getSimpleName() + " needs a field KindlingExtension can set");
                }
                continue; // the test's own
            }
            Object guest = create(context, kind, config, name);
            try {
                field.setAccessible(true);
                field.set(instance, guest);
            } catch (IllegalAccessException | InaccessibleObjectException e) {
                throw new ExtensionConfigurationException("cannot set field " + name + ": open its package to "
                        + "dev.kindling.devices (" + e.getMessage() + ")", e); // the guest is closed with its context
            }
        }
    }

    // ---- parameters

    @Override
    public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
        return Kind.of(parameter.getParameter().getType()) != null;
    }

    @Override
    public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
        Kind kind = Kind.of(parameter.getParameter().getType());
        var executable = parameter.getDeclaringExecutable();
        String name = executable.getDeclaringClass().getSimpleName() + "."
                + (executable instanceof Constructor<?> ? "<init>" : executable.getName())
                + "." + parameter.getParameter().getName();
        return create(context, kind, config(kind, parameter.getParameter(), name, executable,
                context.getTestClass().orElse(executable.getDeclaringClass())), name);
    }

    // ---- failures

    @Override
    public void handleTestExecutionException(ExtensionContext context, Throwable failure) throws Throwable {
        throw withConsoles(context, failure);
    }

    @Override
    public void handleBeforeAllMethodExecutionException(ExtensionContext context, Throwable failure) throws Throwable {
        throw withConsoles(context, failure);
    }

    @Override
    public void handleBeforeEachMethodExecutionException(ExtensionContext context, Throwable failure) throws Throwable {
        throw withConsoles(context, failure);
    }

    @Override
    public void handleAfterEachMethodExecutionException(ExtensionContext context, Throwable failure) throws Throwable {
        throw withConsoles(context, failure);
    }

    @Override
    public void handleAfterAllMethodExecutionException(ExtensionContext context, Throwable failure) throws Throwable {
        throw withConsoles(context, failure);
    }

    /** Adds the console of every guest this context and its parents hold to {@code failure}. */
    private static Throwable withConsoles(ExtensionContext context, Throwable failure) {
        if (failure instanceof TestAbortedException) {
            return failure;
        }
        for (ExtensionContext c = context; c != null; c = c.getParent().orElse(null)) {
            Guests guests = c.getStore(NAMESPACE).get(new GuestsKey(c.getUniqueId()), Guests.class);
            if (guests == null) {
                continue;
            }
            for (Guest g : guests.open()) {
                String tail;
                try {
                    tail = GuestConsoleOutput.tail(g.console().text());
                } catch (RuntimeException e) {
                    tail = "(the console cannot be read: " + e + ")"; // the test's own failure comes first
                }
                failure.addSuppressed(new GuestConsoleOutput(g.name(), tail));
                context.publishReportEntry("kindling.console." + g.name(), tail.isBlank() ? "(nothing printed)" : tail);
            }
        }
        return failure;
    }

    // ---- creating and closing

    /** What the extension injects, with the annotation that configures it. */
    private enum Kind {
        SANDBOX(Sandbox.class, SandboxConfig.class),
        MICROVM(Microvm.class, MicrovmConfig.class);

        final Class<?> type;
        final Class<? extends Annotation> annotation;

        Kind(Class<?> type, Class<? extends Annotation> annotation) {
            this.type = type;
            this.annotation = annotation;
        }

        static Kind of(Class<?> type) {
            for (Kind k : values()) {
                if (k.type == type) {
                    return k;
                }
            }
            return null;
        }

        Class<? extends Annotation> other() {
            return this == SANDBOX ? MicrovmConfig.class : SandboxConfig.class;
        }
    }

    /** The nearest annotation for {@code kind}: on the element, the method, the class and its superclasses, its enclosing classes. */
    private static Annotation config(Kind kind, AnnotatedElement element, String name, AnnotatedElement method,
            Class<?> testClass) {
        if (element.isAnnotationPresent(kind.other()) && !element.isAnnotationPresent(kind.annotation)) {
            throw new ExtensionConfigurationException(name + " is a " + kind.type.getSimpleName() + " but has @"
                    + kind.other().getSimpleName() + ": use @" + kind.annotation.getSimpleName());
        }
        Annotation a = element.getAnnotation(kind.annotation);
        if (a == null && method != null) {
            a = method.getAnnotation(kind.annotation);
        }
        for (Class<?> outer = testClass; a == null && outer != null; outer = outer.getEnclosingClass()) {
            for (Class<?> c = outer; a == null && c != null; c = c.getSuperclass()) {
                a = c.getAnnotation(kind.annotation);
            }
        }
        return a != null ? a : Defaults.class.getAnnotation(kind.annotation);
    }

    private static Object create(ExtensionContext context, Kind kind, Annotation config, String name) {
        Function<String, Optional<String>> parameters = context::getConfigurationParameter;
        Guests guests = context.getStore(NAMESPACE)
                .getOrComputeIfAbsent(new GuestsKey(context.getUniqueId()), k -> new Guests(), Guests.class);
        try {
            return switch (kind) {
                case SANDBOX -> guests.add(name, sandbox(context, (SandboxConfig) config, name, parameters));
                case MICROVM -> guests.add(name, microvm((MicrovmConfig) config, name, parameters));
            };
        } catch (ConfigException e) {
            throw new ExtensionConfigurationException("@" + kind.annotation.getSimpleName() + " of " + name + ": "
                    + e.getMessage(), e);
        }
    }

    private static Sandbox sandbox(ExtensionContext context, SandboxConfig c, String name,
            Function<String, Optional<String>> parameters) {
        Optional<Path> kernel = path("kernel", c.kernel(), parameters);
        Optional<Path> initrd = path("initrd", c.initrd(), parameters);
        Optional<Path> rootDisk = path("rootDisk", c.rootDisk(), parameters);
        if (!c.fromSnapshot()) {
            return builder(c, name, kernel, initrd, rootDisk).build();
        }
        // one boot per configuration for the whole run: the root store closes the snapshot when the run ends
        SnapshotKey key = new SnapshotKey(c.memoryMib(), c.vcpus(), c.bootTimeoutSeconds(), kernel, initrd, rootDisk);
        SandboxSnapshot snapshot = context.getRoot().getStore(NAMESPACE).getOrComputeIfAbsent(key,
                k -> builder(c, SNAPSHOT_NAME, kernel, initrd, rootDisk).snapshotAfterBoot(), SandboxSnapshot.class);
        return snapshot.newSandbox();
    }

    private static Sandbox.Builder builder(SandboxConfig c, String name, Optional<Path> kernel, Optional<Path> initrd,
            Optional<Path> rootDisk) {
        Sandbox.Builder b = Sandbox.builder().name(name).memoryMib(c.memoryMib()).vcpus(c.vcpus())
                .bootTimeout(Duration.ofSeconds(c.bootTimeoutSeconds()));
        kernel.ifPresent(b::kernel);
        initrd.ifPresent(b::initrd);
        rootDisk.ifPresent(b::rootDisk);
        return b;
    }

    /** A {@link SandboxConfig} with its paths resolved: the sandboxes one snapshot serves. */
    private record SnapshotKey(long memoryMib, int vcpus, long bootTimeoutSeconds, Optional<Path> kernel,
            Optional<Path> initrd, Optional<Path> rootDisk) {
    }

    private static Microvm microvm(MicrovmConfig c, String name, Function<String, Optional<String>> parameters) {
        MicrovmBuilder b = Microvm.builder().name(name).memoryMib(c.memoryMib()).vcpus(c.vcpus());
        Optional<Path> kernel = path("kernel", c.kernel(), parameters);
        Optional<Path> initrd = path("initrd", c.initrd(), parameters);
        if (kernel.isPresent()) {
            b.kernel(kernel.get()).cmdline(c.cmdline());
            initrd.ifPresent(b::initrd);
        } else {
            BuiltGuest g = BuiltGuest.locate(System::getenv, parameters);
            b.kernel(g.vmlinux()).initrd(initrd.orElse(g.initramfs()))
                    .cmdline(c.cmdline().isBlank() ? g.cmdline() : g.cmdline() + " " + c.cmdline());
        }
        Microvm vm = b.build();
        if (c.start()) {
            try {
                vm.start();
            } catch (RuntimeException e) {
                vm.close();
                throw e;
            }
        }
        return vm;
    }

    /** The path {@code value} names, placeholders expanded; empty for an empty value. */
    private static Optional<Path> path(String field, String value, Function<String, Optional<String>> parameters) {
        if (value.isEmpty()) {
            return Optional.empty();
        }
        Matcher m = PLACEHOLDER.matcher(value);
        StringBuilder expanded = new StringBuilder();
        while (m.find()) {
            String name = m.group(1);
            String v = parameters.apply(name).or(() -> Optional.ofNullable(System.getenv(name))).orElseThrow(() ->
                    new ConfigException(field, field + " " + value + ": ${" + name + "} is neither a configuration "
                            + "parameter, a system property nor an environment variable"));
            m.appendReplacement(expanded, Matcher.quoteReplacement(v));
        }
        m.appendTail(expanded);
        Path p = Path.of(expanded.toString()).toAbsolutePath();
        if (!Files.isRegularFile(p)) {
            throw new ConfigException(field, field + " " + p + " does not exist or is not a file");
        }
        return Optional.of(p);
    }

    private static void closeGuestsOf(ExtensionContext context) {
        Guests guests = context.getStore(NAMESPACE).get(new GuestsKey(context.getUniqueId()), Guests.class);
        if (guests != null) {
            guests.close();
        }
    }

    /** A context's own guests: its unique id keeps a child from finding its parent's in the store. */
    private record GuestsKey(String contextId) {
    }

    private record Guest(String name, AutoCloseable handle) {
        Console console() {
            return handle instanceof Sandbox s ? s.console() : ((Microvm) handle).console();
        }
    }

    /** The guests one context created, closed newest first; closing again closes nothing. */
    private static final class Guests implements AutoCloseable {
        private final Deque<Guest> open = new ArrayDeque<>(); // guarded by this

        synchronized <T extends AutoCloseable> T add(String name, T handle) {
            open.push(new Guest(name, handle));
            return handle;
        }

        synchronized List<Guest> open() {
            return List.copyOf(open).reversed(); // oldest first, as they were declared
        }

        @Override
        public void close() {
            RuntimeException failed = null;
            while (true) {
                Guest g;
                synchronized (this) {
                    g = open.poll();
                }
                if (g == null) {
                    break;
                }
                try {
                    g.handle().close();
                } catch (Exception e) {
                    RuntimeException r = new IllegalStateException("closing " + g.name() + " failed: " + e.getMessage(), e);
                    if (failed == null) {
                        failed = r;
                    } else {
                        failed.addSuppressed(r);
                    }
                }
            }
            if (failed != null) {
                throw failed;
            }
        }
    }
}
