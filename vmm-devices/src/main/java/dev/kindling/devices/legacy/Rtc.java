package dev.kindling.devices.legacy;

import dev.kindling.bus.BusRange;
import dev.kindling.device.Device;
import dev.kindling.irq.IrqLine;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;
import java.time.Clock;
import java.time.DateTimeException;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.concurrent.Future;

/**
 * An MC146818 real-time clock with its 128 bytes of CMOS RAM, on the port-I/O bus at 0x70 (offset 0:
 * index, write-only, reads as 0xff; bit 7, the NMI mask, is ignored) and 0x71 (offset 1: data).
 *
 * <p><b>Time</b> is the injected {@link Clock}'s, in UTC, plus whatever offset the guest sets by
 * writing the time registers (directly, or between setting and clearing register B's SET bit, during
 * which the registers hold still). Registers 0-9 and the century byte 0x32 are presented in BCD or
 * binary (register B bit 2) and 12- or 24-hour form (bit 1) as register B says when they are read.
 * Register A's update-in-progress bit reads as 1 during the last 244 µs of every second (the chip
 * raises it that long before the update), except while SET is 1. Register D always reports valid RAM.
 *
 * <p><b>Interrupts.</b> Register C's flags are computed from the clock whenever they are looked at:
 * UF after each second's update, AF when the alarm (registers 1, 3, 5; values 0xc0-0xff match
 * anything) matches the new time, PF at the rate register A bits 0-3 select. When a flag is set whose
 * enable bit in register B is set, IRQF is set and the IRQ 8 line is asserted ({@code set(true)}, a
 * level, like QEMU's RTC); reading register C clears every flag and lowers the line. While any
 * interrupt is enabled a daemon timer thread re-evaluates the flags at each relevant instant (no faster
 * than every 50 µs), so the guest gets its interrupt without polling.
 *
 * <p><b>CMOS memory size.</b> {@link #setMemorySize} stores the bytes QEMU's microvm writes
 * ({@link #memorySizeBytes}). {@link #cmos}/{@link #setCmos} give the host raw access to the RAM.
 *
 * <p>Only one-byte accesses are decoded; others read as all ones and writes are ignored.
 */
public final class Rtc implements Device, BusMapped, Stateful {
    /** The index port; the data port follows it. */
    public static final long BASE = 0x70;
    public static final int LENGTH = 2;
    public static final int IRQ = 8;

    static final int SECONDS = 0x00;
    static final int SECONDS_ALARM = 0x01;
    static final int MINUTES = 0x02;
    static final int MINUTES_ALARM = 0x03;
    static final int HOURS = 0x04;
    static final int HOURS_ALARM = 0x05;
    static final int DAY_OF_WEEK = 0x06;
    static final int DAY_OF_MONTH = 0x07;
    static final int MONTH = 0x08;
    static final int YEAR = 0x09;
    static final int REG_A = 0x0a;
    static final int REG_B = 0x0b;
    static final int REG_C = 0x0c;
    static final int REG_D = 0x0d;
    static final int CENTURY = 0x32;

    static final int A_UIP = 0x80;
    static final int B_SET = 0x80;
    static final int B_PIE = 0x40;
    static final int B_AIE = 0x20;
    static final int B_UIE = 0x10;
    static final int B_BINARY = 0x04;
    static final int B_24H = 0x02;
    static final int C_IRQF = 0x80;
    static final int C_PF = 0x40;
    static final int C_AF = 0x20;
    static final int C_UF = 0x10;
    static final int D_VRT = 0x80;

    /** How long UIP is high before the update: 8 cycles of the 32.768 kHz time base. */
    static final long UIP_NANOS = 8 * LegacyIo.NANOS_PER_SECOND / 32768;
    private static final long MIN_TIMER_NANOS = 50_000;
    private static final long KIB = 1024;
    private static final long MIB = 1024 * KIB;

    private final String name;
    private final IrqLine irq;
    private final Clock clock;
    private final boolean timerThread;

    // guarded by this
    private final int[] cmos = new int[128];
    private int index;
    /** Guest time minus host time, in nanoseconds. */
    private long offsetNanos;
    /** The last guest second whose update was accounted for in register C. */
    private long lastUpdateSecond;
    /** The last periodic-interrupt period accounted for in register C, in periods since the epoch. */
    private long lastPeriod;
    private boolean irqLevel;
    private DeviceTimer timer;
    private Future<?> nextEvent;
    private boolean closed;

    /** An RTC on the host's clock. */
    public Rtc(IrqLine irq) {
        this("rtc", irq, Clock.systemUTC());
    }

    /**
     * @param irq IRQ 8, driven as a level
     * @param clock the host time the guest's time follows; tests inject one they can move
     */
    public Rtc(String name, IrqLine irq, Clock clock) {
        this(name, irq, clock, true);
    }

    /** Without a timer thread the flags only advance on guest access or {@link #poll()}: for tests. */
    Rtc(String name, IrqLine irq, Clock clock, boolean timerThread) {
        this.timerThread = timerThread;
        this.name = Objects.requireNonNull(name, "name");
        this.irq = Objects.requireNonNull(irq, "irq");
        this.clock = Objects.requireNonNull(clock, "clock");
        cmos[REG_A] = 0x26; // 32.768 kHz time base, 1024 Hz periodic rate
        cmos[REG_B] = B_24H;
        cmos[REG_D] = D_VRT;
        long now = guestNanos();
        lastUpdateSecond = Math.floorDiv(now, LegacyIo.NANOS_PER_SECOND);
        lastPeriod = currentPeriod(now);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public List<BusRange> busRanges() {
        return List.of(new BusRange(BASE, LENGTH, this));
    }

    /**
     * The CMOS bytes QEMU's microvm stores for a guest with {@code ramBelow4G} bytes of RAM below 4 GiB
     * and {@code ramAbove4G} above, as index to byte value: 0x15/0x16 base memory in KiB (at most 640),
     * 0x17/0x18 and 0x30/0x31 KiB above 1 MiB (at most 65535), 0x34/0x35 64 KiB blocks between 16 MiB
     * and 4 GiB (at most 65535), 0x5b-0x5d 64 KiB blocks above 4 GiB.
     */
    public static Map<Integer, Integer> memorySizeBytes(long ramBelow4G, long ramAbove4G) {
        Map<Integer, Integer> bytes = new TreeMap<>();
        long base = Math.min(ramBelow4G / KIB, 640);
        put16(bytes, 0x15, base);
        long extended = ramBelow4G > MIB ? Math.min((ramBelow4G - MIB) / KIB, 65535) : 0;
        put16(bytes, 0x17, extended);
        put16(bytes, 0x30, extended);
        long above16M = ramBelow4G > 16 * MIB ? Math.min((ramBelow4G - 16 * MIB) / (64 * KIB), 65535) : 0;
        put16(bytes, 0x34, above16M);
        long high = Math.max(ramAbove4G, 0) / (64 * KIB);
        bytes.put(0x5b, (int) (high & 0xff));
        bytes.put(0x5c, (int) ((high >> 8) & 0xff));
        bytes.put(0x5d, (int) ((high >> 16) & 0xff));
        return Collections.unmodifiableMap(bytes);
    }

    private static void put16(Map<Integer, Integer> bytes, int index, long value) {
        bytes.put(index, (int) (value & 0xff));
        bytes.put(index + 1, (int) ((value >> 8) & 0xff));
    }

    /** Stores {@link #memorySizeBytes} in the CMOS. */
    public synchronized void setMemorySize(long ramBelow4G, long ramAbove4G) {
        memorySizeBytes(ramBelow4G, ramAbove4G).forEach((i, v) -> cmos[i] = v);
    }

    /** The raw CMOS byte at {@code index} (0-127), as stored: time registers hold their last snapshot. */
    public synchronized int cmos(int index) {
        return cmos[index & 0x7f];
    }

    /** Sets a raw CMOS byte (0x0e-0x7f: the RAM; the clock registers are the guest's business). */
    public synchronized void setCmos(int index, int value) {
        if (index < 0x0e || index > 0x7f) {
            throw new IllegalArgumentException("CMOS RAM index 0x" + Integer.toHexString(index));
        }
        cmos[index] = value & 0xff;
    }

    @Override
    public synchronized long read(long offset, int size) {
        if (!LegacyIo.byteAccess(offset, size, LENGTH) || offset == 0) {
            return LegacyIo.unclaimed(size);
        }
        return readRegister(index);
    }

    @Override
    public synchronized void write(long offset, int size, long value) {
        if (!LegacyIo.byteAccess(offset, size, LENGTH)) {
            return;
        }
        int v = (int) value & 0xff;
        if (offset == 0) {
            index = v & 0x7f;
        } else {
            writeRegister(index, v);
        }
    }

    /** Stops the interrupt timer. */
    @Override
    public void close() {
        DeviceTimer t;
        synchronized (this) {
            closed = true;
            t = timer;
            timer = null;
            nextEvent = null;
        }
        if (t != null) {
            t.stop();
        }
    }

    /** How far the guest may set its clock from the host's: 200 years, so guest time never overflows. */
    private static final long MAX_OFFSET_NANOS = 200L * 366 * 86_400 * LegacyIo.NANOS_PER_SECOND;

    /**
     * The CMOS bytes (clock registers, alarms, A-C, RAM), the index, the guest's offset from the host
     * clock (the time goes on from the host's, as QEMU's rtc base does), the last update and periodic
     * period accounted for, and the IRQ level.
     */
    @Override
    public synchronized void saveState(StateWriter out) {
        byte[] bytes = new byte[cmos.length];
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = (byte) cmos[i];
        }
        out.putBytes(bytes).putByte(index).putLong(offsetNanos).putLong(lastUpdateSecond).putLong(lastPeriod)
                .putBoolean(irqLevel);
    }

    /** Checks it all first (a bad state changes nothing), then drives IRQ 8 as saved and re-arms the timer. */
    @Override
    public synchronized void restoreState(StateReader in) {
        byte[] bytes = in.getBytes();
        int newIndex = in.getByte();
        long offset = in.getLong();
        long updateSecond = in.getLong();
        long period = in.getLong();
        boolean level = in.getBoolean();
        if (bytes.length != cmos.length) {
            throw in.bad(bytes.length + " CMOS bytes, not " + cmos.length);
        }
        if (newIndex > 0x7f) {
            throw in.bad("CMOS index is " + newIndex);
        }
        if (Math.abs(offset) > MAX_OFFSET_NANOS) {
            throw in.bad("the guest clock is " + offset + " ns off the host's");
        }
        int a = bytes[REG_A] & 0xff;
        int b = bytes[REG_B] & 0xff;
        int c = bytes[REG_C] & 0xff;
        if ((a & A_UIP) != 0 || (c & 0x0f) != 0 || (bytes[REG_D] & 0xff) != D_VRT) {
            throw in.bad(String.format("registers A-D are 0x%x 0x%x 0x%x 0x%x", a, b, c, bytes[REG_D] & 0xff));
        }
        boolean pending = (c & b & (C_PF | C_AF | C_UF)) != 0;
        if (level != pending || ((c & C_IRQF) != 0) != pending) {
            throw in.bad(String.format("IRQ 8 is %s with register B 0x%x and C 0x%x", level ? "high" : "low", b, c));
        }
        for (int i = 0; i < cmos.length; i++) {
            cmos[i] = bytes[i] & 0xff;
        }
        index = newIndex;
        offsetNanos = offset;
        lastUpdateSecond = updateSecond;
        lastPeriod = period;
        updateIrq(); // the new machine's line starts low
        reschedule();
    }

    // ---- registers

    private int readRegister(int i) {
        switch (i) {
            case SECONDS, MINUTES, HOURS, DAY_OF_WEEK, DAY_OF_MONTH, MONTH, YEAR, CENTURY -> {
                if ((cmos[REG_B] & B_SET) == 0) {
                    snapshot(guestNanos());
                }
                return cmos[i];
            }
            case REG_A -> {
                return cmos[REG_A] | (updateInProgress() ? A_UIP : 0);
            }
            case REG_C -> {
                evaluate();
                int v = cmos[REG_C];
                cmos[REG_C] = 0;
                updateIrq();
                return v;
            }
            case REG_D -> {
                return D_VRT;
            }
            default -> {
                return cmos[i];
            }
        }
    }

    private void writeRegister(int i, int v) {
        switch (i) {
            case SECONDS, MINUTES, HOURS, DAY_OF_WEEK, DAY_OF_MONTH, MONTH, YEAR, CENTURY -> {
                if ((cmos[REG_B] & B_SET) != 0) {
                    cmos[i] = v;
                } else {
                    // the clock is running: the write sets the time at once (as QEMU does)
                    evaluate();
                    snapshot(guestNanos());
                    cmos[i] = v;
                    commitTime(cmos[REG_B]);
                }
            }
            case REG_A -> {
                evaluate();
                cmos[REG_A] = v & 0x7f;
                lastPeriod = currentPeriod(guestNanos());
                reschedule();
            }
            case REG_B -> writeRegisterB(v);
            case REG_C, REG_D -> {} // read-only
            default -> cmos[i] = v;
        }
    }

    private void writeRegisterB(int v) {
        evaluate();
        int old = cmos[REG_B];
        if ((v & B_SET) != 0) {
            v &= ~B_UIE; // setting SET clears UIE
        }
        boolean wasSet = (old & B_SET) != 0;
        boolean isSet = (v & B_SET) != 0;
        if (!wasSet && isSet) {
            snapshot(guestNanos()); // freeze the registers for the guest to rewrite
            cmos[REG_B] = v;
        } else if (wasSet && !isSet) {
            cmos[REG_B] = v;
            commitTime(old);
        } else if (isSet && ((old ^ v) & (B_BINARY | B_24H)) != 0) {
            // the frozen registers change format with register B
            long seconds = registersToEpochSecond(old);
            cmos[REG_B] = v;
            if (seconds != Long.MIN_VALUE) {
                snapshot(seconds * LegacyIo.NANOS_PER_SECOND);
            }
        } else {
            cmos[REG_B] = v;
        }
        updateIrq();
        reschedule();
    }

    // ---- time

    private long guestNanos() {
        Instant now = clock.instant();
        return now.getEpochSecond() * LegacyIo.NANOS_PER_SECOND + now.getNano() + offsetNanos;
    }

    private boolean updateInProgress() {
        if ((cmos[REG_B] & B_SET) != 0) {
            return false;
        }
        return Math.floorMod(guestNanos(), LegacyIo.NANOS_PER_SECOND) >= LegacyIo.NANOS_PER_SECOND - UIP_NANOS;
    }

    private int encode(int value, int regB) {
        return (regB & B_BINARY) != 0 ? value : LegacyIo.toBcd(value);
    }

    private int decode(int reg, int regB) {
        return (regB & B_BINARY) != 0 ? reg : LegacyIo.fromBcd(reg);
    }

    private int encodeHour(int hour, int regB) {
        if ((regB & B_24H) != 0) {
            return encode(hour, regB);
        }
        int h12 = hour % 12 == 0 ? 12 : hour % 12;
        return encode(h12, regB) | (hour >= 12 ? 0x80 : 0);
    }

    private int decodeHour(int reg, int regB) {
        if ((regB & B_24H) != 0) {
            return decode(reg & 0x7f, regB);
        }
        int h = decode(reg & 0x7f, regB) % 12;
        return (reg & 0x80) != 0 ? h + 12 : h;
    }

    private static LocalDateTime dateTime(long epochSecond) {
        return LocalDateTime.ofEpochSecond(epochSecond, 0, ZoneOffset.UTC);
    }

    /** Writes the guest time into the clock registers, in register B's format. */
    private void snapshot(long guestNanos) {
        int b = cmos[REG_B];
        LocalDateTime t = dateTime(Math.floorDiv(guestNanos, LegacyIo.NANOS_PER_SECOND));
        cmos[SECONDS] = encode(t.getSecond(), b);
        cmos[MINUTES] = encode(t.getMinute(), b);
        cmos[HOURS] = encodeHour(t.getHour(), b);
        cmos[DAY_OF_WEEK] = encode(t.getDayOfWeek().getValue() % 7 + 1, b); // 1 = Sunday
        cmos[DAY_OF_MONTH] = encode(t.getDayOfMonth(), b);
        cmos[MONTH] = encode(t.getMonthValue(), b);
        cmos[YEAR] = encode(Math.floorMod(t.getYear(), 100), b);
        cmos[CENTURY] = encode(Math.floorDiv(t.getYear(), 100), b);
    }

    /** The time the clock registers hold, read in the format {@code regB}; MIN_VALUE if not a valid date. */
    private long registersToEpochSecond(int regB) {
        try {
            int year = decode(cmos[CENTURY], regB) * 100 + decode(cmos[YEAR], regB);
            LocalDateTime t = LocalDateTime.of(year, decode(cmos[MONTH], regB), decode(cmos[DAY_OF_MONTH], regB),
                    decodeHour(cmos[HOURS], regB), decode(cmos[MINUTES], regB), decode(cmos[SECONDS], regB));
            return t.toEpochSecond(ZoneOffset.UTC);
        } catch (DateTimeException e) {
            return Long.MIN_VALUE;
        }
    }

    /**
     * Makes the time in the registers the guest's time, starting a fresh second now. A date that does
     * not exist leaves the clock where it was.
     */
    private void commitTime(int regB) {
        long seconds = registersToEpochSecond(regB);
        if (seconds == Long.MIN_VALUE) {
            return;
        }
        Instant now = clock.instant();
        long host = now.getEpochSecond() * LegacyIo.NANOS_PER_SECOND + now.getNano();
        offsetNanos = seconds * LegacyIo.NANOS_PER_SECOND - host;
        long guest = guestNanos();
        lastUpdateSecond = Math.floorDiv(guest, LegacyIo.NANOS_PER_SECOND);
        lastPeriod = currentPeriod(guest);
        reschedule();
    }

    // ---- interrupts

    /** The periodic interrupt period in 32.768 kHz ticks, 0 if off. */
    private int periodTicks() {
        int rs = cmos[REG_A] & 0x0f;
        if (rs == 0) {
            return 0;
        }
        return rs <= 2 ? 1 << (rs + 6) : 1 << (rs - 1);
    }

    /** How many periodic-interrupt periods have passed since the epoch at guest time {@code g}. */
    private long currentPeriod(long g) {
        int period = periodTicks();
        if (period == 0) {
            return 0;
        }
        long ticks = Math.floorDiv(g, LegacyIo.NANOS_PER_SECOND) * 32768
                + Math.floorMod(g, LegacyIo.NANOS_PER_SECOND) * 32768 / LegacyIo.NANOS_PER_SECOND;
        return Math.floorDiv(ticks, period);
    }

    /** Brings register C's flags up to the present guest time. */
    private void evaluate() {
        long g = guestNanos();
        long second = Math.floorDiv(g, LegacyIo.NANOS_PER_SECOND);
        if ((cmos[REG_B] & B_SET) != 0 || second < lastUpdateSecond) {
            lastUpdateSecond = second; // updates are inhibited, or time went back: no update happened
        } else if (second > lastUpdateSecond) {
            cmos[REG_C] |= C_UF;
            // one day of seconds covers every alarm pattern
            for (long s = Math.max(lastUpdateSecond + 1, second - 86_399); s <= second; s++) {
                if (alarmMatches(s)) {
                    cmos[REG_C] |= C_AF;
                    break;
                }
            }
            lastUpdateSecond = second;
        }
        if (periodTicks() != 0) {
            long period = currentPeriod(g);
            if (period > lastPeriod) {
                cmos[REG_C] |= C_PF;
            }
            lastPeriod = period;
        }
        updateIrq();
    }

    private boolean alarmMatches(long epochSecond) {
        int b = cmos[REG_B];
        LocalDateTime t = dateTime(epochSecond);
        return alarmField(cmos[SECONDS_ALARM], encode(t.getSecond(), b))
                && alarmField(cmos[MINUTES_ALARM], encode(t.getMinute(), b))
                && alarmField(cmos[HOURS_ALARM], encodeHour(t.getHour(), b));
    }

    private static boolean alarmField(int alarm, int now) {
        return (alarm & 0xc0) == 0xc0 || alarm == now;
    }

    private void updateIrq() {
        boolean level = (cmos[REG_C] & cmos[REG_B] & (C_PF | C_AF | C_UF)) != 0;
        if (level) {
            cmos[REG_C] |= C_IRQF;
        } else {
            cmos[REG_C] &= ~C_IRQF;
        }
        if (level != irqLevel) {
            irqLevel = level;
            irq.set(level);
        }
    }

    /** Arms the timer for the next instant a flag with its interrupt enabled can change; or stops it. */
    private void reschedule() {
        if (nextEvent != null) {
            nextEvent.cancel(false);
            nextEvent = null;
        }
        int enabled = cmos[REG_B];
        boolean periodic = (enabled & B_PIE) != 0 && periodTicks() != 0;
        boolean perSecond = (enabled & (B_UIE | B_AIE)) != 0 && (enabled & B_SET) == 0;
        if (closed || !timerThread || (!periodic && !perSecond)) {
            return;
        }
        long g = guestNanos();
        long delay = Long.MAX_VALUE;
        if (perSecond) {
            delay = LegacyIo.NANOS_PER_SECOND - Math.floorMod(g, LegacyIo.NANOS_PER_SECOND);
        }
        if (periodic) {
            long nextTick = (currentPeriod(g) + 1) * periodTicks();
            long at = Math.floorDiv(nextTick, 32768) * LegacyIo.NANOS_PER_SECOND
                    + LegacyIo.scaleCeil(Math.floorMod(nextTick, 32768), LegacyIo.NANOS_PER_SECOND, 32768);
            delay = Math.min(delay, at - g);
        }
        if (timer == null) {
            timer = LegacyIo.timerThread(name + "-timer");
        }
        nextEvent = timer.schedule(this::timerFired, Math.max(delay, MIN_TIMER_NANOS));
    }

    private synchronized void timerFired() {
        if (closed) {
            return;
        }
        nextEvent = null;
        evaluate();
        reschedule();
    }

    /** Re-evaluates the flags now, as the timer does; for tests that move the clock. */
    synchronized void poll() {
        evaluate();
        reschedule();
    }

    /** Whether the IRQ line is asserted. */
    public synchronized boolean interruptAsserted() {
        return irqLevel;
    }

    @Override
    public String toString() {
        return name + " (MC146818 at 0x70)";
    }
}
