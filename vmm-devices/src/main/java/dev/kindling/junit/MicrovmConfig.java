package dev.kindling.junit;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * How {@link KindlingExtension} builds (and starts) a {@code Microvm} for a field or parameter. An
 * empty kernel means the Linux guest built by scripts/build-guest-kernel.sh (its vmlinux, initramfs
 * and base command line); paths may name {@code ${property}}s and resolve against the working
 * directory (see {@link KindlingExtension}).
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target({ElementType.FIELD, ElementType.PARAMETER, ElementType.TYPE, ElementType.METHOD})
public @interface MicrovmConfig {
    long memoryMib() default 128;

    int vcpus() default 1;

    String kernel() default "";

    String initrd() default "";

    /**
     * The kernel command line. With the built guest (empty kernel) it is added to that guest's base
     * command line, which this host needs to boot it; empty: the base command line alone.
     */
    String cmdline() default "";

    /** Whether the extension starts the VM before the test (else the test calls start()). */
    boolean start() default true;
}
