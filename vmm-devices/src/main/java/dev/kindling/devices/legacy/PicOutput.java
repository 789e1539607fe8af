package dev.kindling.devices.legacy;

/** The INTR pin of the master 8259: where a {@link Pic8259} tells the CPU an interrupt waits. */
@FunctionalInterface
public interface PicOutput {
    /** Called when INTR changes level; on {@code true} the CPU should run {@link Pic8259#acknowledge()}. */
    void setInterruptRequest(boolean asserted);
}
