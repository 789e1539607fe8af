package dev.kindling.devices.legacy;

import dev.kindling.irq.IrqLine;
import java.util.ArrayList;
import java.util.List;

/** An IrqLine that records what devices do to it: "1"/"0" for set(true/false), "P" for pulse(). */
public final class RecordingLine implements IrqLine {
    private final int gsi;
    private final List<String> events = new ArrayList<>();
    private boolean level;
    private int pulses;

    public RecordingLine(int gsi) {
        this.gsi = gsi;
    }

    @Override
    public int gsi() {
        return gsi;
    }

    @Override
    public synchronized void pulse() {
        pulses++;
        events.add("P");
        notifyAll();
    }

    @Override
    public synchronized void set(boolean l) {
        level = l;
        events.add(l ? "1" : "0");
        notifyAll();
    }

    public synchronized boolean level() {
        return level;
    }

    public synchronized int pulses() {
        return pulses;
    }

    public synchronized List<String> events() {
        return List.copyOf(events);
    }

    public synchronized void clear() {
        events.clear();
    }

    /** Waits until the line is at {@code want}; false on timeout. */
    public synchronized boolean awaitLevel(boolean want, long millis) throws InterruptedException {
        long end = System.nanoTime() + millis * 1_000_000;
        while (level != want) {
            long left = end - System.nanoTime();
            if (left <= 0) {
                return false;
            }
            wait(Math.max(1, left / 1_000_000));
        }
        return true;
    }

    /** Waits until at least {@code n} pulses happened; false on timeout. */
    public synchronized boolean awaitPulses(int n, long millis) throws InterruptedException {
        long end = System.nanoTime() + millis * 1_000_000;
        while (pulses < n) {
            long left = end - System.nanoTime();
            if (left <= 0) {
                return false;
            }
            wait(Math.max(1, left / 1_000_000));
        }
        return true;
    }
}
