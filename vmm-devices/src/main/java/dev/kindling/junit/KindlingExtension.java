package dev.kindling.junit;

/**
 * JUnit 5 extension: injects booted {@code Sandbox} and {@code Microvm} instances into fields and
 * parameters configured by {@link SandboxConfig} / {@link MicrovmConfig}; static fields are shared by
 * the class, instance fields and parameters are fresh per test; closes them after the test even when
 * it fails and attaches the guest console to a failure. Safe under parallel execution.
 *
 * <p>CONTRACT STUB: to be implemented (issue 16).
 */
public final class KindlingExtension {
}
