package dev.kindling.microvm;

import dev.kindling.bus.AddressSpace;
import dev.kindling.device.Device;
import dev.kindling.device.DeviceContext;
import java.util.Locale;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * A device of the caller's for {@link MicrovmBuilder#device}: where the guest reaches it
 * ({@code [base, base + length)} on the port or MMIO bus), the interrupt it raises if any (an ISA IRQ
 * or IOAPIC GSI, 0..23), and the factory that makes it once the machine exists, given its
 * {@link DeviceContext} (guest memory, that interrupt's line, ioeventfds, threads). {@code name} is
 * the device's name in the machine, as its context and threads show it. The machine closes the device.
 * {@link MicrovmBuilder#validate()} checks the window and the IRQ against the machine's own devices.
 */
public record DeviceSpec(AddressSpace space, long base, long length, OptionalInt irq,
                         Function<DeviceContext, Device> factory, String name) {
    public DeviceSpec {
        Objects.requireNonNull(space, "space");
        Objects.requireNonNull(irq, "irq");
        Objects.requireNonNull(factory, "factory");
        Objects.requireNonNull(name, "name");
        if (name.isBlank()) {
            throw new IllegalArgumentException("a device's name must not be blank");
        }
    }

    /** A device named after its window, e.g. {@code pio-0x700}. */
    public DeviceSpec(AddressSpace space, long base, long length, OptionalInt irq, Function<DeviceContext, Device> factory) {
        this(space, base, length, irq, factory, space.name().toLowerCase(Locale.ROOT) + "-0x" + Long.toHexString(base));
    }

    /** A port-I/O device without an interrupt that needs nothing of the machine. */
    public static DeviceSpec pio(long base, long length, Supplier<? extends Device> device) {
        return new DeviceSpec(AddressSpace.PIO, base, length, OptionalInt.empty(), withoutContext(device));
    }

    /** A port-I/O device that raises {@code irq}, made from its context. */
    public static DeviceSpec pio(long base, long length, int irq, Function<DeviceContext, ? extends Device> device) {
        return new DeviceSpec(AddressSpace.PIO, base, length, OptionalInt.of(irq), widen(device));
    }

    /** An MMIO device without an interrupt that needs nothing of the machine. */
    public static DeviceSpec mmio(long base, long length, Supplier<? extends Device> device) {
        return new DeviceSpec(AddressSpace.MMIO, base, length, OptionalInt.empty(), withoutContext(device));
    }

    /** An MMIO device that raises {@code irq}, made from its context. */
    public static DeviceSpec mmio(long base, long length, int irq, Function<DeviceContext, ? extends Device> device) {
        return new DeviceSpec(AddressSpace.MMIO, base, length, OptionalInt.of(irq), widen(device));
    }

    /** This device under another name in the machine (its context's and its threads' name). */
    public DeviceSpec named(String name) {
        return new DeviceSpec(space, base, length, irq, factory, name);
    }

    /** How errors and the I/O map name it, e.g. {@code "device at pio 0x700"}. */
    String describe() {
        return "device at " + space.name().toLowerCase(Locale.ROOT) + " 0x" + Long.toHexString(base);
    }

    private static Function<DeviceContext, Device> withoutContext(Supplier<? extends Device> device) {
        Objects.requireNonNull(device, "device");
        return context -> device.get();
    }

    private static Function<DeviceContext, Device> widen(Function<DeviceContext, ? extends Device> device) {
        Objects.requireNonNull(device, "device");
        return device::apply;
    }
}
