package dev.kindling.devices.pci;

import dev.kindling.irq.IrqLine;
import java.util.Objects;

/**
 * A function's INTx# as the bridge sees it: the level the function sets, which drives the shared
 * interrupt pin unless the guest set Interrupt Disable in the function's command register, and
 * which the function's status register reports (Interrupt Status) either way, as PCI 2.3 has it.
 * Functions whose INTx# the bridge swizzles onto the same pin share one {@link Pin}: the pin is
 * asserted while any of them asserts it (the wired-OR of a real bus).
 */
public final class PciIntx implements IrqLine {
    private final Pin pin;
    private boolean level;
    private boolean disabled;
    private boolean driving;

    public PciIntx(Pin pin) {
        this.pin = Objects.requireNonNull(pin, "pin");
    }

    @Override
    public int gsi() {
        return pin.line.gsi();
    }

    /** One edge, gated like a level. */
    @Override
    public void pulse() {
        set(true);
        set(false);
    }

    @Override
    public synchronized void set(boolean asserted) {
        level = asserted;
        update();
    }

    /** The function's own level, for its status register. */
    synchronized boolean level() {
        return level;
    }

    /** The guest wrote the command register's Interrupt Disable bit. */
    synchronized void disable(boolean off) {
        disabled = off;
        update();
    }

    private void update() {
        boolean drive = level && !disabled;
        if (drive != driving) {
            driving = drive;
            pin.assertBy(drive);
        }
    }

    /** One interrupt pin shared by the functions swizzled onto it. */
    public static final class Pin {
        private final IrqLine line;
        private int asserting;

        public Pin(IrqLine line) {
            this.line = Objects.requireNonNull(line, "line");
        }

        private synchronized void assertBy(boolean up) {
            asserting += up ? 1 : -1;
            if (up ? asserting == 1 : asserting == 0) {
                line.set(up);
            }
        }
    }
}
