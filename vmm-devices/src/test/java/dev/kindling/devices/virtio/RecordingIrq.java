package dev.kindling.devices.virtio;

import dev.kindling.irq.IrqLine;

/** An edge-triggered line that counts pulses and lets tests wait for them. */
public final class RecordingIrq implements IrqLine {
    private final int gsi;
    private int pulses;

    public RecordingIrq(int gsi) {
        this.gsi = gsi;
    }

    @Override
    public int gsi() {
        return gsi;
    }

    @Override
    public synchronized void pulse() {
        pulses++;
        notifyAll();
    }

    @Override
    public void set(boolean level) {
        throw new AssertionError("virtio-mmio pulses its line");
    }

    public synchronized int pulses() {
        return pulses;
    }

    /** Waits until at least {@code n} pulses happened; false on timeout. */
    public synchronized boolean awaitPulses(int n, long millis) throws InterruptedException {
        long end = System.nanoTime() + millis * 1_000_000;
        while (pulses < n) {
            long left = (end - System.nanoTime()) / 1_000_000;
            if (left <= 0) {
                return false;
            }
            wait(left);
        }
        return true;
    }
}
