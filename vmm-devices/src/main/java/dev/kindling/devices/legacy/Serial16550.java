package dev.kindling.devices.legacy;

import dev.kindling.bus.BusRange;
import dev.kindling.device.Device;
import dev.kindling.device.Threads;
import dev.kindling.irq.IrqLine;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;
import dev.kindling.sys.PollingInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A 16550A UART (with the 16750's 64-byte FIFO mode), eight byte-wide registers on the port-I/O bus,
 * normally at {@link #COM1_BASE} with IRQ {@link #COM1_IRQ}.
 *
 * <table>
 * <caption>Registers (offset from the base)</caption>
 * <tr><th>offset</th><th>read</th><th>write</th></tr>
 * <tr><td>0</td><td>RBR (DLL when LCR.DLAB)</td><td>THR (DLL when LCR.DLAB)</td></tr>
 * <tr><td>1</td><td>IER (DLM when LCR.DLAB)</td><td>IER (DLM when LCR.DLAB)</td></tr>
 * <tr><td>2</td><td>IIR</td><td>FCR</td></tr>
 * <tr><td>3..7</td><td colspan="2">LCR, MCR, LSR (writes ignored), MSR (writes ignored), SCR</td></tr>
 * </table>
 *
 * <p><b>Receive.</b> Host bytes come from an {@link InputStream} read by a daemon thread, and from
 * {@link #enqueueInput(byte[])}. Both go first into a host-side queue of {@link #INPUT_QUEUE_CAPACITY}
 * bytes with a lock of its own, and from there into the receive FIFO while it has room: 1 byte with the
 * FIFO disabled (16450 mode), 16 with FCR bit 0, 64 when FCR bit 5 was written with LCR.DLAB set
 * (16750). When the queue is full the reader thread waits for room and {@code enqueueInput} refuses
 * the bytes, so no accepted host byte is dropped. Queuing never waits for the device's lock, which a
 * vCPU may hold for long while the output stream is slow: when that lock is taken, the thread holding
 * it moves the queued bytes into the FIFO as it lets go. In loopback mode host input waits until
 * loopback ends, as the serial input pin is disconnected then. A FIFO reset the guest asks for (FCR
 * bits 1, or toggling bit 0) discards what the FIFO holds, as on the chip.
 *
 * <p><b>Transmit.</b> A byte written to THR goes to the output stream through a bounded buffer that a
 * daemon thread empties; when the stream is slower than the guest, the vCPU writing THR waits for
 * room, so no byte is lost. Transmission is otherwise instantaneous: LSR.THRE and TEMT are set again
 * as soon as THR is written, and the THRE interrupt is raised anew. In loopback mode (MCR bit 4) the
 * byte goes into the receive FIFO instead (an overrun sets LSR.OE and drops it, as the chip does), and
 * MSR mirrors MCR: CTS=RTS, DSR=DTR, RI=OUT1, DCD=OUT2. Outside loopback CTS, DSR and DCD read as set.
 *
 * <p><b>Interrupt.</b> The IRQ line is driven as a level, like QEMU's ISA serial: {@code set(true)}
 * while an enabled interrupt is pending, {@code set(false)} when none is; a THR write drops and
 * re-raises it, which gives an edge-triggered interrupt controller (the PC's configuration for ISA
 * IRQ 4) one edge per transmitted byte. Causes by priority: receiver line status, received data
 * (IIR 0x4 at or above the FIFO trigger level; below it the character timeout, IIR 0xC, is reported
 * at once), THR empty (cleared by reading IIR or writing THR), modem status. MCR.OUT2 does not gate
 * the line. The line is set while the device's lock is held, so its implementation must not call back
 * into this device from another thread and wait for it. The line may be set from a host thread (the
 * one whose input raised "data ready").
 *
 * <p>Only one-byte accesses are decoded; others read as all ones and writes are ignored.
 */
public final class Serial16550 implements Device, BusMapped, Stateful {
    private static final System.Logger LOG = System.getLogger(Serial16550.class.getName());

    /** The standard base port of COM1. */
    public static final long COM1_BASE = 0x3f8;
    /** The standard ISA IRQ of COM1. */
    public static final int COM1_IRQ = 4;
    /** Number of ports the UART decodes. */
    public static final int LENGTH = 8;

    // register offsets
    static final int RBR_THR = 0;
    static final int IER = 1;
    static final int IIR_FCR = 2;
    static final int LCR = 3;
    static final int MCR = 4;
    static final int LSR = 5;
    static final int MSR = 6;
    static final int SCR = 7;

    // IER
    static final int IER_RDI = 0x01;
    static final int IER_THRI = 0x02;
    static final int IER_RLSI = 0x04;
    static final int IER_MSI = 0x08;
    // IIR
    static final int IIR_NO_INT = 0x01;
    static final int IIR_MSI = 0x00;
    static final int IIR_THRI = 0x02;
    static final int IIR_RDI = 0x04;
    static final int IIR_RLSI = 0x06;
    static final int IIR_CTI = 0x0c;
    static final int IIR_FIFO_ENABLED = 0xc0;
    static final int IIR_FIFO64 = 0x20;
    // FCR
    static final int FCR_ENABLE = 0x01;
    static final int FCR_CLEAR_RX = 0x02;
    static final int FCR_CLEAR_TX = 0x04;
    static final int FCR_FIFO64 = 0x20;
    // LCR
    static final int LCR_DLAB = 0x80;
    // MCR
    static final int MCR_DTR = 0x01;
    static final int MCR_RTS = 0x02;
    static final int MCR_OUT1 = 0x04;
    static final int MCR_OUT2 = 0x08;
    static final int MCR_LOOP = 0x10;
    // LSR
    static final int LSR_DR = 0x01;
    static final int LSR_OE = 0x02;
    static final int LSR_BI = 0x10;
    static final int LSR_THRE = 0x20;
    static final int LSR_TEMT = 0x40;
    static final int LSR_ERRORS = 0x1e;
    // MSR
    static final int MSR_DCTS = 0x01;
    static final int MSR_DDSR = 0x02;
    static final int MSR_TERI = 0x04;
    static final int MSR_DDCD = 0x08;
    static final int MSR_CTS = 0x10;
    static final int MSR_DSR = 0x20;
    static final int MSR_RI = 0x40;
    static final int MSR_DCD = 0x80;

    private static final int[] TRIGGER_16 = {1, 4, 8, 14};
    private static final int[] TRIGGER_64 = {1, 16, 32, 56};
    private static final int OUTPUT_BUFFER = 64 * 1024;
    /** Bytes of host input that can wait for room in the receive FIFO. */
    public static final int INPUT_QUEUE_CAPACITY = 64 * 1024;

    private final String name;
    private final long base;
    private final IrqLine irq;
    private final InputStream in;
    private final OutputPump out;
    private final Thread reader;
    private final InputQueue hostInput = new InputQueue(INPUT_QUEUE_CAPACITY);
    private final ReentrantLock lock = new ReentrantLock();

    // registers, guarded by lock
    private int ier;
    private int fcr;
    private boolean fifo64;
    private int lcr = 0x03;
    private int mcr = MCR_OUT2;
    private int lsr = LSR_THRE | LSR_TEMT;
    private int msr;
    private int scr;
    private int divisor = 12; // 9600 baud
    private boolean thrInterruptPending;
    private boolean irqLevel;
    private final ByteRing rx = new ByteRing(64);
    private boolean closed;

    /** A UART at COM1's address; see {@link #Serial16550(String, long, IrqLine, InputStream, OutputStream)}. */
    public Serial16550(String name, IrqLine irq, InputStream in, OutputStream out) {
        this(name, COM1_BASE, irq, in, out);
    }

    /**
     * A UART whose {@link #busRanges()} put it at {@code base}.
     *
     * @param irq the interrupt line (IRQ 4 for COM1), driven as a level
     * @param in host input, read by a daemon thread until end of stream or {@link #close()} (see there); null for none
     * @param out where transmitted bytes go; null discards them
     */
    public Serial16550(String name, long base, IrqLine irq, InputStream in, OutputStream out) {
        this.name = Objects.requireNonNull(name, "name");
        this.base = base;
        this.irq = Objects.requireNonNull(irq, "irq");
        this.msr = modemLines();
        this.in = in;
        this.out = out == null ? null : new OutputPump(name + "-out", out, OUTPUT_BUFFER);
        this.reader = in == null ? null : LegacyIo.daemon(name + "-in", this::readInput);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public List<BusRange> busRanges() {
        return List.of(new BusRange(base, LENGTH, this));
    }

    @Override
    public long read(long offset, int size) {
        if (!LegacyIo.byteAccess(offset, size, LENGTH)) {
            return LegacyIo.unclaimed(size);
        }
        lock.lock();
        try {
            return readRegister((int) offset);
        } finally {
            unlock();
        }
    }

    private int readRegister(int offset) {
        boolean dlab = (lcr & LCR_DLAB) != 0;
        switch (offset) {
            case RBR_THR:
                return dlab ? divisor & 0xff : readRbr();
            case IER:
                return dlab ? (divisor >> 8) & 0xff : ier;
            case IIR_FCR:
                return readIir();
            case LCR:
                return lcr;
            case MCR:
                return mcr;
            case LSR:
                return readLsr();
            case MSR:
                return readMsr();
            default:
                return scr;
        }
    }

    @Override
    public void write(long offset, int size, long value) {
        if (!LegacyIo.byteAccess(offset, size, LENGTH)) {
            return;
        }
        lock.lock();
        try {
            writeRegister((int) offset, (int) value & 0xff);
        } finally {
            unlock();
        }
    }

    private void writeRegister(int offset, int v) {
        boolean dlab = (lcr & LCR_DLAB) != 0;
        switch (offset) {
            case RBR_THR -> {
                if (dlab) {
                    divisor = (divisor & 0xff00) | v;
                } else {
                    writeThr(v);
                }
            }
            case IER -> {
                if (dlab) {
                    divisor = (divisor & 0xff) | (v << 8);
                } else {
                    writeIer(v);
                }
            }
            case IIR_FCR -> writeFcr(v);
            case LCR -> lcr = v;
            case MCR -> writeMcr(v);
            case SCR -> scr = v;
            default -> {} // LSR and MSR are read-only
        }
    }

    /**
     * Queues host input for the guest, as if typed, without blocking: what the receive FIFO cannot take
     * yet waits in the host-side queue until the guest reads. Returns false, queuing nothing, when the
     * queue has no room for all of {@code bytes}; for a stream, prefer the constructor's
     * {@code InputStream}, which waits for room instead. After {@link #close()} the bytes are dropped.
     */
    public boolean enqueueInput(byte[] bytes) {
        if (!hostInput.offer(bytes, 0, bytes.length)) {
            return false;
        }
        offerToGuest();
        return true;
    }

    /** Waits until every byte the guest transmitted so far has been written to the output stream and flushed. */
    public void drainOutput() throws InterruptedException {
        if (out != null) {
            out.drain();
        }
    }

    /**
     * Runs {@code action} once every byte the guest transmitted so far has been written to the output
     * stream (or the stream failed, or this device closed): at once if it already has, else on the
     * output thread. Never blocks; {@code action} must not block either.
     */
    public void whenOutputDrained(Runnable action) {
        if (out == null) {
            action.run();
        } else {
            out.whenDrained(action);
        }
    }

    /** The divisor latch (DLM:DLL): the guest's baud rate is 115200 / divisor. */
    public int divisor() {
        lock.lock();
        try {
            return divisor;
        } finally {
            unlock();
        }
    }

    /** Whether the IRQ line is currently asserted. */
    public boolean interruptAsserted() {
        lock.lock();
        try {
            return irqLevel;
        } finally {
            unlock();
        }
    }

    /**
     * Stops the input thread, drops queued input and flushes queued output (waiting a few seconds at
     * most for a stuck stream). The streams are not closed: they belong to the caller. A reader blocked
     * in a {@code read} that ignores interrupts (such as {@code System.in}) stays until that read
     * returns and drops what it read; to end it at once, give a stream that {@code close()} of the
     * caller's can end, such as {@link PollingInputStream}, and close it first.
     */
    @Override
    public void close() {
        if (out != null) {
            out.close(); // first: releases a vCPU waiting for buffer room while holding this device's lock
        }
        lock.lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
        } finally {
            lock.unlock();
        }
        hostInput.close();
        if (reader != null) {
            reader.interrupt();
            Threads.join(reader, Duration.ofSeconds(2));
        }
    }

    /**
     * The registers, the divisor latch, the pending THR-empty interrupt and the receive FIFO's bytes.
     * Not saved: output already handed to the stream (transmission is instant, nothing is in flight
     * for the guest), and host input still in the host-side queue, which belongs to the old machine's
     * input stream (a clone would otherwise get the same keystrokes as its original).
     */
    @Override
    public void saveState(StateWriter w) {
        lock.lock();
        try {
            w.putByte(ier).putByte(fcr).putBoolean(fifo64).putByte(lcr).putByte(mcr).putByte(lsr).putByte(msr)
                    .putByte(scr).putShort(divisor).putBoolean(thrInterruptPending).putBytes(rx.toArray());
        } finally {
            unlock();
        }
    }

    /** Checks it all first (a bad state changes nothing), then drives the IRQ line as the state says. */
    @Override
    public void restoreState(StateReader r) {
        int newIer = r.getByte();
        int newFcr = r.getByte();
        boolean newFifo64 = r.getBoolean();
        int newLcr = r.getByte();
        int newMcr = r.getByte();
        int newLsr = r.getByte();
        int newMsr = r.getByte();
        int newScr = r.getByte();
        int newDivisor = r.getShort();
        boolean thr = r.getBoolean();
        byte[] fifo = r.getBytes();
        if ((newIer & ~0x0f) != 0 || (newFcr & ~0xc9) != 0 || (newMcr & ~0x1f) != 0) {
            throw r.bad(String.format("IER 0x%x, FCR 0x%x, MCR 0x%x", newIer, newFcr, newMcr));
        }
        int capacity = (newFcr & FCR_ENABLE) == 0 ? 1 : newFifo64 ? 64 : 16;
        if (fifo.length > capacity) {
            throw r.bad(fifo.length + " bytes in a receive FIFO of " + capacity);
        }
        if ((newLsr & (LSR_THRE | LSR_TEMT)) != (LSR_THRE | LSR_TEMT) || (newLsr & 0x80) != 0
                || ((newLsr & LSR_DR) != 0) != (fifo.length > 0)) {
            throw r.bad(String.format("LSR 0x%x with %d bytes received", newLsr, fifo.length));
        }
        lock.lock();
        try {
            int savedMcr = mcr;
            mcr = newMcr;
            int lines = modemLines();
            mcr = savedMcr;
            if ((newMsr & 0xf0) != lines) {
                throw r.bad(String.format("MSR 0x%x with MCR 0x%x", newMsr, newMcr));
            }
            ier = newIer;
            fcr = newFcr;
            fifo64 = newFifo64;
            lcr = newLcr;
            mcr = newMcr;
            lsr = newLsr;
            msr = newMsr;
            scr = newScr;
            divisor = newDivisor;
            thrInterruptPending = thr;
            rx.clear();
            rx.push(fifo, 0, fifo.length);
            admitInput(); // host input that reached this new machine before the restore
            updateIrq(); // the new machine's line starts low
        } finally {
            unlock();
        }
    }

    /** Releases the device's lock, then moves host input that arrived meanwhile into the FIFO. */
    private void unlock() {
        lock.unlock();
        if (!hostInput.isEmpty()) {
            offerToGuest();
        }
    }

    /**
     * Moves queued host input into the FIFO and updates the interrupt, unless another thread holds the
     * device: that thread does it when it lets go ({@link #unlock()}), so input arriving while a vCPU
     * waits for output room waits too, and the caller returns at once.
     */
    private void offerToGuest() {
        while (!hostInput.isEmpty()) {
            long seen = hostInput.arrivals();
            if (!lock.tryLock()) {
                return;
            }
            try {
                if (!closed) {
                    admitInput();
                    updateIrq();
                }
            } finally {
                lock.unlock();
            }
            if (hostInput.arrivals() == seen) {
                return; // nothing new came while we held the lock; the rest waits for FIFO room
            }
        }
    }

    // ---- receive side

    private int rxCapacity() {
        if ((fcr & FCR_ENABLE) == 0) {
            return 1;
        }
        return fifo64 ? 64 : 16;
    }

    private int triggerLevel() {
        return (fifo64 ? TRIGGER_64 : TRIGGER_16)[(fcr >> 6) & 3];
    }

    private boolean loopback() {
        return (mcr & MCR_LOOP) != 0;
    }

    /** Moves host input waiting in the queue into the FIFO as far as it has room. */
    private void admitInput() {
        if (!loopback()) {
            hostInput.moveTo(rx, rxCapacity());
        }
        if (!rx.isEmpty()) {
            lsr |= LSR_DR;
        }
    }

    private int readRbr() {
        int b = rx.pop();
        if (rx.isEmpty()) {
            lsr &= ~LSR_DR;
        }
        admitInput();
        updateIrq();
        return Math.max(b, 0);
    }

    /** The reader thread: stream bytes wait for room in the host-side queue, so none is lost. */
    private void readInput() {
        byte[] buf = new byte[1024];
        try {
            while (true) {
                int n = in.read(buf);
                if (n < 0 || !hostInput.put(buf, 0, n)) {
                    return;
                }
                offerToGuest();
            }
        } catch (InterruptedIOException | InterruptedException e) {
            // close() interrupted a read that supports it, or the wait for room
        } catch (IOException | RuntimeException e) {
            if (!hostInput.isClosed()) {
                LOG.log(Level.WARNING, name + ": input stream failed, no more input: " + e);
            }
        }
    }

    // ---- transmit side

    private void writeThr(int v) {
        thrInterruptPending = false;
        lsr &= ~(LSR_THRE | LSR_TEMT);
        updateIrq();
        if (loopback()) {
            if (rx.size() >= rxCapacity()) {
                lsr |= LSR_OE;
            } else {
                rx.push(v);
                lsr |= LSR_DR;
            }
        } else if (out != null && !closed) {
            out.put(v);
        }
        lsr |= LSR_THRE | LSR_TEMT;
        thrInterruptPending = true;
        updateIrq();
    }

    // ---- control registers

    private void writeIer(int v) {
        int changed = (ier ^ v) & 0x0f;
        ier = v & 0x0f;
        if ((changed & IER_THRI) != 0) {
            // enabling THRI with THR empty raises the interrupt at once (Bochs, QEMU; Windows needs it)
            thrInterruptPending = (ier & IER_THRI) != 0 && (lsr & LSR_THRE) != 0;
        }
        if (changed != 0) {
            updateIrq();
        }
    }

    private void writeFcr(int v) {
        if (((v ^ fcr) & FCR_ENABLE) != 0) {
            v |= FCR_CLEAR_RX | FCR_CLEAR_TX;
        }
        if ((v & FCR_CLEAR_RX) != 0) {
            rx.clear();
            lsr &= ~(LSR_DR | LSR_BI);
        }
        if ((v & FCR_CLEAR_TX) != 0) {
            lsr |= LSR_THRE | LSR_TEMT;
            thrInterruptPending = true;
        }
        if ((lcr & LCR_DLAB) != 0) {
            fifo64 = (v & FCR_FIFO64) != 0; // 16750: bit 5 is writable only with DLAB set
        }
        fcr = v & 0xc9;
        admitInput();
        updateIrq();
    }

    private void writeMcr(int v) {
        mcr = v & 0x1f;
        int lines = modemLines();
        int old = msr & 0xf0;
        int delta = 0;
        if (((old ^ lines) & MSR_CTS) != 0) {
            delta |= MSR_DCTS;
        }
        if (((old ^ lines) & MSR_DSR) != 0) {
            delta |= MSR_DDSR;
        }
        if ((old & MSR_RI) != 0 && (lines & MSR_RI) == 0) {
            delta |= MSR_TERI;
        }
        if (((old ^ lines) & MSR_DCD) != 0) {
            delta |= MSR_DDCD;
        }
        msr = (msr & 0x0f) | delta | lines;
        admitInput();
        updateIrq();
    }

    /** The modem status inputs: looped back from MCR, or a connected host (CTS, DSR, DCD). */
    private int modemLines() {
        if (!loopback()) {
            return MSR_CTS | MSR_DSR | MSR_DCD;
        }
        int lines = 0;
        if ((mcr & MCR_RTS) != 0) {
            lines |= MSR_CTS;
        }
        if ((mcr & MCR_DTR) != 0) {
            lines |= MSR_DSR;
        }
        if ((mcr & MCR_OUT1) != 0) {
            lines |= MSR_RI;
        }
        if ((mcr & MCR_OUT2) != 0) {
            lines |= MSR_DCD;
        }
        return lines;
    }

    private int readLsr() {
        int v = lsr;
        if ((lsr & (LSR_OE | LSR_BI)) != 0) {
            lsr &= ~(LSR_OE | LSR_BI);
            updateIrq();
        }
        return v;
    }

    private int readMsr() {
        int v = msr;
        if ((msr & 0x0f) != 0) {
            msr &= 0xf0;
            updateIrq();
        }
        return v;
    }

    // ---- interrupts

    /** The interrupt identification (low 4 bits of IIR) of the highest-priority pending cause. */
    private int pendingCause() {
        if ((ier & IER_RLSI) != 0 && (lsr & LSR_ERRORS) != 0) {
            return IIR_RLSI;
        }
        if ((ier & IER_RDI) != 0 && (lsr & LSR_DR) != 0) {
            boolean fifo = (fcr & FCR_ENABLE) != 0;
            return fifo && rx.size() < triggerLevel() ? IIR_CTI : IIR_RDI;
        }
        if ((ier & IER_THRI) != 0 && thrInterruptPending) {
            return IIR_THRI;
        }
        if ((ier & IER_MSI) != 0 && (msr & 0x0f) != 0) {
            return IIR_MSI;
        }
        return IIR_NO_INT;
    }

    private int readIir() {
        int cause = pendingCause();
        int v = cause;
        if ((fcr & FCR_ENABLE) != 0) {
            v |= IIR_FIFO_ENABLED | (fifo64 ? IIR_FIFO64 : 0);
        }
        if (cause == IIR_THRI) {
            thrInterruptPending = false;
            updateIrq();
        }
        return v;
    }

    private void updateIrq() {
        boolean level = pendingCause() != IIR_NO_INT;
        if (level != irqLevel) {
            irqLevel = level;
            irq.set(level);
        }
    }

    @Override
    public String toString() {
        return String.format("%s (16550A at 0x%x, irq %d)", name, base, irq.gsi());
    }

    /**
     * Host input on its way to the FIFO, guarded by its own monitor, which is only ever held briefly
     * (the device's lock may be taken before it, never after). Emptiness and the arrival count are
     * readable without it.
     */
    private static final class InputQueue {
        private final ByteRing ring;
        private boolean closed;
        private volatile int size;
        private volatile long arrivals;

        InputQueue(int capacity) {
            this.ring = new ByteRing(Math.min(capacity, 256), capacity);
        }

        boolean isEmpty() {
            return size == 0;
        }

        /** Counts the offers and puts that added bytes. */
        long arrivals() {
            return arrivals;
        }

        synchronized boolean isClosed() {
            return closed;
        }

        /** Adds all of {@code len} bytes, or none if they do not fit (false). Dropped when closed. */
        synchronized boolean offer(byte[] b, int off, int len) {
            if (closed) {
                return true;
            }
            if (ring.room() < len) {
                return false;
            }
            add(b, off, len);
            return true;
        }

        /** Adds {@code len} bytes, waiting for room as needed; false if closed first. */
        synchronized boolean put(byte[] b, int off, int len) throws InterruptedException {
            while (len > 0) {
                while (!closed && ring.room() == 0) {
                    wait();
                }
                if (closed) {
                    return false;
                }
                int n = Math.min(len, ring.room());
                add(b, off, n);
                off += n;
                len -= n;
            }
            return true;
        }

        private void add(byte[] b, int off, int len) {
            ring.push(b, off, len);
            size = ring.size();
            arrivals++;
        }

        /** Moves bytes into {@code fifo} until it holds {@code capacity}; wakes a waiting {@link #put}. */
        synchronized void moveTo(ByteRing fifo, int capacity) {
            boolean moved = false;
            while (!ring.isEmpty() && fifo.size() < capacity) {
                fifo.push(ring.pop());
                moved = true;
            }
            if (moved) {
                size = ring.size();
                notifyAll();
            }
        }

        synchronized void close() {
            closed = true;
            ring.clear();
            size = 0;
            notifyAll();
        }
    }
}
