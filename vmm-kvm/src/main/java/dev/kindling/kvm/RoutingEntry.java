package dev.kindling.kvm;

/** One GSI routing table entry for {@link Vm#setGsiRouting}, {@code struct kvm_irq_routing_entry}. */
public sealed interface RoutingEntry {
    /** The global system interrupt this entry routes. */
    int gsi();

    /** Routes {@code gsi} to a pin of an in-kernel interrupt controller ({@link KvmConstants#IRQCHIP_IOAPIC}, ...). */
    record Irqchip(int gsi, int irqchip, int pin) implements RoutingEntry {}

    /** Routes {@code gsi} to a message-signalled interrupt: writes {@code data} to {@code address}. */
    record Msi(int gsi, long address, int data) implements RoutingEntry {}
}
