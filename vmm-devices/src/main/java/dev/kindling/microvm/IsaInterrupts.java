package dev.kindling.microvm;

import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.irq.MsiVector;
import java.util.function.IntFunction;

/**
 * The builder's interrupt lines as an {@link InterruptService}, for device contexts: lines by GSI
 * only. MSI vectors and end-of-interrupt notices need the platform's own interrupt service.
 */
final class IsaInterrupts implements InterruptService {
    private final IntFunction<IrqLine> lines;

    IsaInterrupts(IntFunction<IrqLine> lines) {
        this.lines = lines;
    }

    @Override
    public IrqLine line(int gsi) {
        return lines.apply(gsi);
    }

    @Override
    public MsiVector msiVector() {
        throw new UnsupportedOperationException("MSI vectors need the platform's interrupt service, which this machine's"
                + " interrupt wiring does not provide");
    }

    @Override
    public AutoCloseable onEndOfInterrupt(int gsi, Runnable listener) {
        throw new UnsupportedOperationException("end-of-interrupt notices for GSI " + gsi + " need the platform's"
                + " interrupt service, which this machine's interrupt wiring does not provide");
    }
}
