package dev.kindling.microvm;

import dev.kindling.bus.AddressSpace;
import dev.kindling.device.Device;
import dev.kindling.irq.IrqLine;
import java.util.Locale;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * A device of the caller's for {@link MicrovmBuilder#device}: where the guest reaches it
 * ({@code [base, base + length)} on the port or MMIO bus), the interrupt it raises if any (an ISA IRQ
 * or IOAPIC GSI, 0..23), and the factory that makes it once the machine exists, given that
 * interrupt's line. The machine closes the device. {@link MicrovmBuilder#validate()} checks the window
 * and the IRQ against the machine's own devices.
 */
public record DeviceSpec(AddressSpace space, long base, long length, OptionalInt irq,
                         Function<IrqLine, Device> factory) {
    public DeviceSpec {
        Objects.requireNonNull(space, "space");
        Objects.requireNonNull(irq, "irq");
        Objects.requireNonNull(factory, "factory");
    }

    /** A port-I/O device without an interrupt. */
    public static DeviceSpec pio(long base, long length, Supplier<? extends Device> device) {
        return new DeviceSpec(AddressSpace.PIO, base, length, OptionalInt.empty(), withoutLine(device));
    }

    /** A port-I/O device that raises {@code irq}. */
    public static DeviceSpec pio(long base, long length, int irq, Function<IrqLine, ? extends Device> device) {
        return new DeviceSpec(AddressSpace.PIO, base, length, OptionalInt.of(irq), widen(device));
    }

    /** An MMIO device without an interrupt. */
    public static DeviceSpec mmio(long base, long length, Supplier<? extends Device> device) {
        return new DeviceSpec(AddressSpace.MMIO, base, length, OptionalInt.empty(), withoutLine(device));
    }

    /** An MMIO device that raises {@code irq}. */
    public static DeviceSpec mmio(long base, long length, int irq, Function<IrqLine, ? extends Device> device) {
        return new DeviceSpec(AddressSpace.MMIO, base, length, OptionalInt.of(irq), widen(device));
    }

    /** How errors and the I/O map name it, e.g. {@code "device at pio 0x700"}. */
    String describe() {
        return "device at " + space.name().toLowerCase(Locale.ROOT) + " 0x" + Long.toHexString(base);
    }

    private static Function<IrqLine, Device> withoutLine(Supplier<? extends Device> device) {
        Objects.requireNonNull(device, "device");
        return line -> device.get();
    }

    private static Function<IrqLine, Device> widen(Function<IrqLine, ? extends Device> device) {
        Objects.requireNonNull(device, "device");
        return device::apply;
    }
}
