package dev.kindling.vfio;

/** One interrupt index of a VFIO device: how many it has and how they behave ({@link VfioConstants}{@code .IRQ_INFO_*}). */
public record IrqInfo(int index, int flags, int count) {
    public boolean eventfd() {
        return (flags & VfioConstants.IRQ_INFO_EVENTFD) != 0;
    }

    public boolean maskable() {
        return (flags & VfioConstants.IRQ_INFO_MASKABLE) != 0;
    }

    /** Level-triggered: the host masks it when it fires, and the VMM unmasks it once the guest acknowledged it. */
    public boolean automasked() {
        return (flags & VfioConstants.IRQ_INFO_AUTOMASKED) != 0;
    }
}
