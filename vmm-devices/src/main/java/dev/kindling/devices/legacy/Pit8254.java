package dev.kindling.devices.legacy;

import dev.kindling.bus.BusRange;
import dev.kindling.device.Device;
import dev.kindling.irq.IrqLine;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.Future;
import java.util.function.LongSupplier;

/**
 * An 8254 programmable interval timer at 1.193182 MHz, on the port-I/O bus: counters 0-2 at offsets
 * 0-2 (ports 0x40-0x42) and the control word at offset 3 (port 0x43). {@link #speakerPort()} is port
 * 0x61 (system control port B): bit 0 gates counter 2, bit 1 enables the speaker (stored only), bit 4
 * toggles every 15 µs (the DRAM refresh indicator), bit 5 is counter 2's OUT. {@link #busRanges()}
 * lists both windows.
 *
 * <p>Counters are computed from the time source ({@code LongSupplier} of nanoseconds, by default
 * {@link System#nanoTime()}), not ticked: all six modes (0 interrupt on terminal count, 1 hardware
 * one-shot, 2 rate generator, 3 square wave, 4 software strobe, 5 hardware strobe; 6 and 7 are 2 and
 * 3), lobyte, hibyte and lobyte-then-hibyte access, the counter latch command, the read-back command
 * (count and status, with OUT and null count) and BCD counting. Counters 0 and 1 have their gate tied
 * high; counter 2's gate is port 0x61 bit 0 (low pauses modes 0, 2, 3 and 4, forcing OUT high in 2 and 3;
 * a rising edge restarts 2 and 3 and triggers 1 and 5). A new count takes effect at once.
 *
 * <p><b>Interrupt.</b> Counter 0's OUT drives IRQ 0 as edges: {@code pulse()} once per rising edge,
 * from a daemon scheduler thread: every period in modes 2 and 3, once at terminal count in modes 0 and
 * 4. Periodic pulses come no closer than 50 µs apart (a guest asking for more gets 20 kHz); a late
 * thread delivers one pulse for the edges it missed, as an edge-triggered controller would latch them.
 * {@link #close()} stops the thread.
 *
 * <p>Only one-byte accesses are decoded; others read as all ones and writes are ignored.
 */
public final class Pit8254 implements Device, BusMapped, Stateful {
    public static final long BASE = 0x40;
    public static final int LENGTH = 4;
    public static final long SPEAKER_PORT = 0x61;
    public static final long FREQUENCY_HZ = 1_193_182;
    public static final int IRQ = 0;

    static final long MIN_PERIODIC_NANOS = 50_000;
    private static final long REFRESH_NANOS = 15_085;

    static final int RW_LATCH = 0;
    static final int RW_LSB = 1;
    static final int RW_MSB = 2;
    static final int RW_WORD = 3;

    private final String name;
    private final IrqLine irq;
    private final LongSupplier nanoTime;
    private final Channel[] channels = {new Channel(), new Channel(), new Channel()};
    private final Device speaker = new SpeakerPort();
    private final DeviceTimer timer;

    // guarded by this
    private boolean speakerData;
    private Future<?> nextIrq;
    private long irqGeneration;
    /** Counter 0's last edge that produced a pulse, counted from its load (0: none yet). */
    private long lastEdge;
    private boolean closed;

    /** A PIT on the host's monotonic clock. */
    public Pit8254(IrqLine irq0) {
        this("pit", irq0, System::nanoTime);
    }

    /**
     * @param irq0 IRQ 0, pulsed on counter 0's rising OUT edges
     * @param nanoTime a monotonic time in nanoseconds; tests step it by hand
     */
    public Pit8254(String name, IrqLine irq0, LongSupplier nanoTime) {
        this(name, irq0, nanoTime, LegacyIo.timerThread(name + "-timer"));
    }

    /** With the timer given: tests pass one that runs on {@code nanoTime} as they move it. */
    Pit8254(String name, IrqLine irq0, LongSupplier nanoTime, DeviceTimer timer) {
        this.name = Objects.requireNonNull(name, "name");
        this.irq = Objects.requireNonNull(irq0, "irq0");
        this.nanoTime = Objects.requireNonNull(nanoTime, "nanoTime");
        this.timer = Objects.requireNonNull(timer, "timer");
        channels[2].gate = false; // port 0x61 bit 0 starts at 0
    }

    @Override
    public String name() {
        return name;
    }

    /** Port 0x61 as a one-byte device. */
    public Device speakerPort() {
        return speaker;
    }

    @Override
    public List<BusRange> busRanges() {
        return List.of(new BusRange(BASE, LENGTH, this), new BusRange(SPEAKER_PORT, 1, speaker));
    }

    @Override
    public synchronized long read(long offset, int size) {
        if (!LegacyIo.byteAccess(offset, size, LENGTH) || offset == 3) {
            return LegacyIo.unclaimed(size); // the control word is write-only
        }
        return channels[(int) offset].read(nanoTime.getAsLong());
    }

    @Override
    public synchronized void write(long offset, int size, long value) {
        if (!LegacyIo.byteAccess(offset, size, LENGTH)) {
            return;
        }
        int v = (int) value & 0xff;
        long now = nanoTime.getAsLong();
        if (offset == 3) {
            writeControl(v, now);
        } else {
            channels[(int) offset].writeCount(v, now);
            if (offset == 0) {
                programIrq();
            }
        }
    }

    /** Stops the interrupt thread. */
    @Override
    public void close() {
        synchronized (this) {
            closed = true;
            irqGeneration++;
        }
        timer.stop();
    }

    /** Counter {@code n}'s current count as the chip would latch it (binary, or BCD in BCD mode); for tests and debugging. */
    public synchronized int count(int n) {
        return channels[n].currentCount(nanoTime.getAsLong());
    }

    /** Counter {@code n}'s OUT pin now. */
    public synchronized boolean out(int n) {
        return channels[n].out(nanoTime.getAsLong());
    }

    /**
     * Every counter's registers, latches and gate, its load time as the time elapsed since (so the
     * count goes on from there on another clock, as QEMU's PIT state does), counter 0's last edge
     * delivered, and port 0x61's speaker bit.
     */
    @Override
    public synchronized void saveState(StateWriter out) {
        long now = nanoTime.getAsLong();
        for (Channel c : channels) {
            c.save(out, now);
        }
        out.putLong(lastEdge).putBoolean(speakerData);
    }

    /** Checks it all first (a bad state changes nothing), then re-arms IRQ 0 from the edge it had reached. */
    @Override
    public synchronized void restoreState(StateReader in) {
        long now = nanoTime.getAsLong();
        Channel[] loaded = new Channel[3];
        for (int n = 0; n < 3; n++) {
            loaded[n] = new Channel();
            loaded[n].load(in, now, n);
        }
        long edge = in.getLong();
        boolean speakerBit = in.getBoolean();
        if (edge < 0 || edge > loaded[0].risingEdgesSinceLoad(now)) {
            throw in.bad("counter 0's last edge is " + edge);
        }
        for (int n = 0; n < 3; n++) {
            channels[n].copyFrom(loaded[n]);
        }
        speakerData = speakerBit;
        irqGeneration++;
        if (nextIrq != null) {
            nextIrq.cancel(false);
            nextIrq = null;
        }
        lastEdge = edge;
        scheduleIrq(irqGeneration, now);
    }

    private void writeControl(int v, long now) {
        int sc = v >> 6;
        if (sc == 3) { // read-back
            for (int n = 0; n < 3; n++) {
                if ((v & (2 << n)) != 0) {
                    if ((v & 0x20) == 0) {
                        channels[n].latchCount(now);
                    }
                    if ((v & 0x10) == 0) {
                        channels[n].latchStatus(now);
                    }
                }
            }
            return;
        }
        Channel c = channels[sc];
        int access = (v >> 4) & 3;
        if (access == RW_LATCH) {
            c.latchCount(now);
            return;
        }
        c.program(access, (v >> 1) & 7, (v & 1) != 0);
        if (sc == 0) {
            programIrq();
        }
    }

    // ---- IRQ 0

    /** (Re)arms the interrupt timer after counter 0 changed. */
    private void programIrq() {
        irqGeneration++;
        lastEdge = 0;
        if (nextIrq != null) {
            nextIrq.cancel(false);
            nextIrq = null;
        }
        scheduleIrq(irqGeneration, nanoTime.getAsLong());
    }

    private void scheduleIrq(long generation, long now) {
        Channel c = channels[0];
        if (closed || !c.loaded) {
            return;
        }
        long edge = c.nextRisingEdge(lastEdge);
        if (edge < 0) {
            return; // one-shot already delivered, or a mode counter 0's gate can never start
        }
        long at = c.loadTime + LegacyIo.scaleCeil(edge * c.count, LegacyIo.NANOS_PER_SECOND, FREQUENCY_HZ);
        long delay = Math.max(at - now, c.periodic() ? MIN_PERIODIC_NANOS : 0);
        nextIrq = timer.schedule(() -> irqTimerFired(generation), delay);
    }

    private void irqTimerFired(long generation) {
        boolean fire;
        synchronized (this) {
            if (generation != irqGeneration || closed) {
                return;
            }
            nextIrq = null;
            fire = collectEdge();
            scheduleIrq(generation, nanoTime.getAsLong());
        }
        if (fire) {
            irq.pulse(); // outside the lock: an edge needs no ordering with register accesses
        }
    }

    /** True if counter 0 has had a rising edge since the last one reported. */
    private boolean collectEdge() {
        Channel c = channels[0];
        if (!c.loaded) {
            return false;
        }
        long edges = c.risingEdgesSinceLoad(nanoTime.getAsLong());
        if (edges > lastEdge) {
            lastEdge = edges;
            return true;
        }
        return false;
    }

    /** One counter. Guarded by the enclosing Pit8254. */
    private static final class Channel {
        int count = 0x10000; // the reload value in input clocks: 1..0x10000 (1..10000 in BCD)
        int mode;
        boolean bcd;
        int rwMode = RW_WORD;
        int readState = RW_WORD;
        boolean readHigh;
        int writeState = RW_WORD;
        boolean writeHigh;
        int writeLatch;
        int latchedCount;
        int latchedState = RW_LATCH; // RW_LATCH: nothing latched
        boolean latchedHigh;
        int status;
        boolean statusLatched;
        boolean loaded;
        long loadTime;
        boolean gate = true;
        /** Modes 1 and 5: a gate edge has started the count. */
        boolean triggered;
        /** Input clocks counted when the gate went low (modes that pause). */
        long pausedTicks;

        void save(StateWriter out, long now) {
            out.putInt(count).putByte(mode).putBoolean(bcd).putByte(rwMode).putByte(readState)
                    .putBoolean(readHigh).putByte(writeState).putBoolean(writeHigh).putByte(writeLatch)
                    .putInt(latchedCount).putByte(latchedState).putBoolean(latchedHigh).putByte(status)
                    .putBoolean(statusLatched).putBoolean(loaded).putLong(loaded ? Math.max(now - loadTime, 0) : 0)
                    .putBoolean(gate).putBoolean(triggered).putLong(pausedTicks);
        }

        /** Reads counter {@code n}'s state into this spare Channel, checking every value. */
        void load(StateReader in, long now, int n) {
            String what = "counter " + n + " ";
            int newCount = in.getInt();
            mode = in.getByte();
            bcd = in.getBoolean();
            rwMode = in.getByte();
            readState = in.getByte();
            readHigh = in.getBoolean();
            writeState = in.getByte();
            writeHigh = in.getBoolean();
            writeLatch = in.getByte();
            latchedCount = in.getInt();
            latchedState = in.getByte();
            latchedHigh = in.getBoolean();
            status = in.getByte();
            statusLatched = in.getBoolean();
            loaded = in.getBoolean();
            long elapsed = in.getLong();
            gate = in.getBoolean();
            triggered = in.getBoolean();
            pausedTicks = in.getLong();
            if (mode > 5) {
                throw in.bad(what + "mode is " + mode);
            }
            if (newCount < 1 || newCount > modulus()) {
                throw in.bad(what + "count is " + newCount);
            }
            count = newCount;
            if (rwMode < RW_LSB || rwMode > RW_WORD || readState < RW_LSB || readState > RW_WORD
                    || writeState < RW_LSB || writeState > RW_WORD || latchedState > RW_WORD) {
                throw in.bad(what + "access modes are " + rwMode + "/" + readState + "/" + writeState + "/"
                        + latchedState);
            }
            if ((latchedCount & ~0xffff) != 0) {
                throw in.bad(what + "latched count is " + latchedCount);
            }
            if (elapsed < 0 || pausedTicks < 0) {
                throw in.bad(what + "elapsed time is " + elapsed + " ns, paused at " + pausedTicks + " clocks");
            }
            if (n != 2 && !gate) {
                throw in.bad(what + "has its gate low, but it is tied high");
            }
            loadTime = now - elapsed;
        }

        void copyFrom(Channel c) {
            count = c.count;
            mode = c.mode;
            bcd = c.bcd;
            rwMode = c.rwMode;
            readState = c.readState;
            readHigh = c.readHigh;
            writeState = c.writeState;
            writeHigh = c.writeHigh;
            writeLatch = c.writeLatch;
            latchedCount = c.latchedCount;
            latchedState = c.latchedState;
            latchedHigh = c.latchedHigh;
            status = c.status;
            statusLatched = c.statusLatched;
            loaded = c.loaded;
            loadTime = c.loadTime;
            gate = c.gate;
            triggered = c.triggered;
            pausedTicks = c.pausedTicks;
        }

        int modulus() {
            return bcd ? 10000 : 0x10000;
        }

        boolean periodic() {
            return mode == 2 || mode == 3;
        }

        boolean pausesOnGate() {
            return mode == 0 || mode == 2 || mode == 3 || mode == 4;
        }

        boolean waitsForTrigger() {
            return mode == 1 || mode == 5;
        }

        /** Input clocks counted since the count was loaded (or triggered). */
        long ticks(long now) {
            if (!loaded || (waitsForTrigger() && !triggered)) {
                return 0;
            }
            if (!gate && pausesOnGate()) {
                return pausedTicks;
            }
            return LegacyIo.scale(Math.max(now - loadTime, 0), FREQUENCY_HZ, LegacyIo.NANOS_PER_SECOND);
        }

        /** The counting element's value, binary. */
        int counterValue(long now) {
            long d = ticks(now);
            return switch (mode) {
                case 2 -> (int) (count - d % count);
                case 3 -> (int) (count - (2 * d) % count);
                default -> (int) Math.floorMod(count - d, (long) modulus());
            };
        }

        /** The value a latch or a read sees: 16 bits, BCD in BCD mode. */
        int currentCount(long now) {
            int v = counterValue(now) % modulus();
            return bcd ? bcd16(v) : v & 0xffff;
        }

        boolean out(long now) {
            if (!loaded) {
                return mode != 0;
            }
            long d = ticks(now);
            return switch (mode) {
                case 0 -> d >= count;
                case 1 -> !triggered || d >= count;
                case 2 -> !gate || d % count != count - 1;
                case 3 -> !gate || d % count < (count + 1) / 2;
                default -> !triggered && mode == 5 || d != count; // 4 and 5: low for one clock
            };
        }

        /** OUT's rising edges since the load: periods completed (2, 3) or 1 after terminal count (0, 4). */
        long risingEdgesSinceLoad(long now) {
            long d = ticks(now);
            return switch (mode) {
                case 2, 3 -> d / count;
                case 0, 4 -> d >= count ? 1 : 0;
                default -> 0;
            };
        }

        /** The edge number after {@code last}, or -1 if there is none to wait for. */
        long nextRisingEdge(long last) {
            if (!gate && pausesOnGate()) {
                return -1;
            }
            return switch (mode) {
                case 2, 3 -> last + 1;
                case 0, 4 -> last == 0 ? 1 : -1;
                default -> -1;
            };
        }

        void program(int access, int newMode, boolean newBcd) {
            rwMode = access;
            readState = access;
            writeState = access;
            readHigh = false;
            writeHigh = false;
            mode = newMode > 5 ? newMode - 4 : newMode;
            bcd = newBcd;
            loaded = false; // counting stops until a count is written; OUT takes its initial level
            triggered = false;
        }

        void writeCount(int v, long now) {
            switch (writeState) {
                case RW_LSB -> load(v, now);
                case RW_MSB -> load(v << 8, now);
                default -> {
                    if (!writeHigh) {
                        writeLatch = v;
                        writeHigh = true;
                        if (mode == 0) {
                            loaded = false; // mode 0: the first byte stops the count
                        }
                    } else {
                        writeHigh = false;
                        load(writeLatch | (v << 8), now);
                    }
                }
            }
        }

        private void load(int raw, long now) {
            int c = bcd ? unbcd16(raw) : raw;
            count = c == 0 ? modulus() : c;
            loadTime = now;
            loaded = true;
            triggered = false;
            pausedTicks = 0;
        }

        void latchCount(long now) {
            if (latchedState == RW_LATCH) {
                latchedCount = currentCount(now);
                latchedState = rwMode;
                latchedHigh = false;
            }
        }

        void latchStatus(long now) {
            if (!statusLatched) {
                status = (out(now) ? 0x80 : 0) | (loaded ? 0 : 0x40) | (rwMode << 4) | (mode << 1) | (bcd ? 1 : 0);
                statusLatched = true;
            }
        }

        int read(long now) {
            if (statusLatched) {
                statusLatched = false;
                return status;
            }
            if (latchedState != RW_LATCH) {
                switch (latchedState) {
                    case RW_LSB -> {
                        latchedState = RW_LATCH;
                        return latchedCount & 0xff;
                    }
                    case RW_MSB -> {
                        latchedState = RW_LATCH;
                        return (latchedCount >> 8) & 0xff;
                    }
                    default -> {
                        if (!latchedHigh) {
                            latchedHigh = true;
                            return latchedCount & 0xff;
                        }
                        latchedState = RW_LATCH;
                        return (latchedCount >> 8) & 0xff;
                    }
                }
            }
            int c = currentCount(now);
            switch (readState) {
                case RW_LSB -> {
                    return c & 0xff;
                }
                case RW_MSB -> {
                    return (c >> 8) & 0xff;
                }
                default -> {
                    readHigh = !readHigh;
                    return readHigh ? c & 0xff : (c >> 8) & 0xff;
                }
            }
        }

        void setGate(boolean level, long now) {
            if (level == gate) {
                return;
            }
            if (!level) {
                if (pausesOnGate()) {
                    pausedTicks = ticks(now);
                }
                gate = false;
                return;
            }
            gate = true;
            switch (mode) {
                case 0, 4 -> // resume where the count stopped
                        loadTime = now - LegacyIo.scale(pausedTicks, LegacyIo.NANOS_PER_SECOND, FREQUENCY_HZ);
                case 2, 3 -> loadTime = now; // a rising gate reloads
                default -> { // 1, 5: a rising gate triggers
                    loadTime = now;
                    triggered = loaded;
                }
            }
        }

        private static int bcd16(int v) {
            return LegacyIo.toBcd(v / 100) << 8 | LegacyIo.toBcd(v % 100);
        }

        private static int unbcd16(int raw) {
            return LegacyIo.fromBcd(raw >> 8) * 100 + LegacyIo.fromBcd(raw & 0xff);
        }
    }

    /** Port 0x61. */
    private final class SpeakerPort implements Device {
        @Override
        public String name() {
            return name + "-port61";
        }

        @Override
        public long read(long offset, int size) {
            if (!LegacyIo.byteAccess(offset, size, 1)) {
                return LegacyIo.unclaimed(size);
            }
            synchronized (Pit8254.this) {
                long now = nanoTime.getAsLong();
                Channel c2 = channels[2];
                int refresh = (int) ((now / REFRESH_NANOS) & 1);
                return (c2.gate ? 0x01 : 0) | (speakerData ? 0x02 : 0) | (refresh << 4) | (c2.out(now) ? 0x20 : 0);
            }
        }

        @Override
        public void write(long offset, int size, long value) {
            if (!LegacyIo.byteAccess(offset, size, 1)) {
                return;
            }
            synchronized (Pit8254.this) {
                speakerData = (value & 0x02) != 0;
                channels[2].setGate((value & 0x01) != 0, nanoTime.getAsLong());
            }
        }
    }

    @Override
    public String toString() {
        return name + " (8254 at 0x40, irq 0)";
    }
}
