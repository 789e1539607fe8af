package dev.kindling.junit;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * How {@link KindlingExtension} builds a {@code Sandbox} for a field or parameter. Empty paths mean
 * the defaults of {@code Sandbox.builder()}; paths may name {@code ${property}}s and resolve against
 * the working directory (see {@link KindlingExtension}).
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target({ElementType.FIELD, ElementType.PARAMETER, ElementType.TYPE, ElementType.METHOD})
public @interface SandboxConfig {
    long memoryMib() default 128;

    int vcpus() default 1;

    String kernel() default "";

    String initrd() default "";

    String rootDisk() default "";

    /** Seconds {@code build()} waits for the agent. */
    long bootTimeoutSeconds() default 180;

    /**
     * Whether the sandbox is a clone (the default): the extension boots one sandbox per configuration
     * per test run, snapshots it and hands every field and parameter a fresh clone of it, which starts
     * without booting a kernel and writes only to its own memory and disk copies. A clone's console
     * holds what the guest printed since the clone started, not the boot. {@code false} boots each one.
     */
    boolean fromSnapshot() default true;
}
