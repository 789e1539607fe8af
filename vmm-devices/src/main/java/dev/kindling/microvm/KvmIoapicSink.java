package dev.kindling.microvm;

import dev.kindling.devices.legacy.IoApic;
import dev.kindling.devices.legacy.MsiSink;
import dev.kindling.irq.IrqLine;
import dev.kindling.kvm.platform.IoapicLink;
import dev.kindling.kvm.platform.IoapicModel;
import dev.kindling.kvm.platform.KvmPlatform;
import java.util.function.IntFunction;

/**
 * The VMM's IOAPIC on a split irqchip: its messages go to the local APICs through KVM_SIGNAL_MSI, and
 * each pin's message is mirrored into KVM's GSI routing table (GSI = pin), as QEMU does: KVM reports
 * the EOI of a level-triggered vector only for vectors it finds there, and an irqfd on the pin's GSI
 * then takes the same path without leaving the kernel. The platform's interrupt service drives the
 * IOAPIC's pins and runs the end-of-interrupt listeners.
 */
final class KvmIoapicSink implements MsiSink {
    private volatile IoapicLink link;

    /** Connects {@code ioapic}, made with this sink, and the PIC's inputs (null: no PIC) to {@code platform}. */
    void connect(KvmPlatform platform, IoApic ioapic, IntFunction<IrqLine> picInputs) {
        link = platform.connectIoapic(new IoapicModel() {
            @Override
            public void setPin(int pin, boolean level) {
                ioapic.line(pin).set(level);
            }

            @Override
            public void endOfInterrupt(int vector) {
                ioapic.endOfInterrupt(vector);
            }
        }, picInputs);
    }

    private IoapicLink link() {
        IoapicLink l = link;
        if (l == null) {
            throw new IllegalStateException("the IOAPIC is not connected to the platform yet");
        }
        return l;
    }

    @Override
    public void deliver(long address, int data) {
        link().deliver(address, data);
    }

    @Override
    public void routeChanged(int pin, long address, int data, boolean masked) {
        link().pinChanged(pin, address, data, masked);
    }

    @Override
    public void endOfInterrupt(int pin) {
        link().endOfInterrupt(pin);
    }
}
