package dev.kindling.microvm;

import dev.kindling.devices.legacy.Pic8259;
import dev.kindling.devices.legacy.PicOutput;
import dev.kindling.kvm.platform.ExternalInterrupts;
import dev.kindling.kvm.platform.KvmPlatform;

/** Split irqchip: the PIC's INTR pin wakes the boot vCPU, which injects the PIC's vector through LINT0. */
final class PicWiring implements PicOutput, ExternalInterrupts {
    private volatile Pic8259 pic;
    private volatile Runnable wakeBsp = () -> { };

    void connect(Pic8259 pic, KvmPlatform platform) {
        this.pic = pic;
        this.wakeBsp = platform.connectPic(this);
    }

    @Override
    public void setInterruptRequest(boolean asserted) {
        if (asserted) {
            wakeBsp.run();
        }
    }

    @Override
    public boolean pending() {
        Pic8259 p = pic;
        return p != null && p.interruptRequested();
    }

    @Override
    public int acknowledge() {
        return pic.acknowledge();
    }
}
