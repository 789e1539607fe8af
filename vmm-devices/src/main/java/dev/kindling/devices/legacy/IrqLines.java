package dev.kindling.devices.legacy;

import dev.kindling.irq.IrqLine;
import java.util.List;

/** Building blocks for {@link IrqLine}s: an input pin of a controller, and a fan-out to several controllers. */
public final class IrqLines {
    private IrqLines() {}

    /** Receives the level of one input pin. */
    @FunctionalInterface
    public interface PinInput {
        void level(boolean asserted);
    }

    /**
     * A line numbered {@code gsi} whose {@link IrqLine#set set} forwards the level to {@code input};
     * {@link IrqLine#pulse pulse} is a rising then a falling edge.
     */
    public static IrqLine pin(int gsi, PinInput input) {
        return new Pin(gsi, input);
    }

    /**
     * One line driving several controllers at once, as the ISA IRQs reach both the 8259 and the IOAPIC
     * on a PC. {@code gsi} is what {@link IrqLine#gsi()} reports.
     */
    public static IrqLine fanOut(int gsi, IrqLine... lines) {
        List<IrqLine> targets = List.of(lines);
        return new IrqLine() {
            @Override
            public int gsi() {
                return gsi;
            }

            @Override
            public void pulse() {
                for (IrqLine l : targets) {
                    l.pulse();
                }
            }

            @Override
            public void set(boolean level) {
                for (IrqLine l : targets) {
                    l.set(level);
                }
            }

            @Override
            public String toString() {
                return "irq" + gsi + "->" + targets;
            }
        };
    }

    /** A line that goes nowhere, for devices built without an interrupt. */
    public static IrqLine none(int gsi) {
        return pin(gsi, level -> {});
    }

    private record Pin(int gsi, PinInput input) implements IrqLine {
        @Override
        public void pulse() {
            input.level(true);
            input.level(false);
        }

        @Override
        public void set(boolean level) {
            input.level(level);
        }
    }
}
