package dev.kindling.irq;

/**
 * One interrupt line into the guest's interrupt controller. Edge-triggered devices {@link #pulse()};
 * level-triggered ones {@link #set(boolean) assert} the line until the guest has serviced the cause.
 */
public interface IrqLine {
    /** The global system interrupt (GSI) number this line raises, as the guest's IOAPIC numbers it. */
    int gsi();

    /** Raises and lowers the line: one edge. */
    void pulse();

    /** Asserts ({@code true}) or de-asserts the line. */
    void set(boolean level);
}
