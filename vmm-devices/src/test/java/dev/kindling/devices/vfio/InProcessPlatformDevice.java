package dev.kindling.devices.vfio;

import dev.kindling.sys.EventFd;
import dev.kindling.sys.Mapping;
import dev.kindling.sys.Poller;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * A platform device as vfio-platform would hand it over, in the test's process: region 0 is a page
 * of memory (mmap-able), region 1 a page of registers (not), and interrupt 0 is level-triggered and
 * automasked as VFIO does it: it fires (signals the trigger and masks itself) while the device
 * asserts it and it is unmasked; an unmask (a call, or a signal on the unmask eventfd, which a thread
 * here watches as the kernel would) lets it fire again. Registers of region 1: 0x00 ID, 0x04 RAISE
 * (write n: assert, and after each acknowledgement assert again, n times in all), 0x08 STATUS (bit 0:
 * asserting), 0x0c ACK (write: stop asserting), 0x10 COUNT (acknowledgements).
 */
public class InProcessPlatformDevice implements PlatformDeviceBackend {
    public static final int ID = 0x4b564650;
    public static final int RAISE = 0x04, STATUS = 0x08, ACK = 0x0c, COUNT = 0x10;

    private final Mapping memory = Mapping.anonymous(4096);
    private final boolean level;
    // guarded by this
    private EventFd trigger;
    private EventFd unmaskFd;
    private Thread unmasker;
    private boolean asserting;
    private boolean masked;
    private int raisesLeft;
    private int acks;
    private int fired;
    private int unmasks;
    private int resets;
    private long trappedRegion0;
    private final List<long[]> dma = new ArrayList<>();
    private boolean closed;

    public InProcessPlatformDevice() {
        this(true);
    }

    public InProcessPlatformDevice(boolean level) {
        this.level = level;
    }

    @Override
    public String name() {
        return "in-process";
    }

    @Override
    public List<Region> regions() {
        return List.of(new Region(0, 4096, true, true, true), new Region(1, 4096, true, true, false));
    }

    @Override
    public List<Irq> irqs() {
        return List.of(new Irq(0, level));
    }

    @Override
    public MemorySegment map(int region) {
        if (region != 0) {
            throw new IllegalArgumentException("region " + region + " cannot be mapped");
        }
        return memory.segment();
    }

    @Override
    public synchronized long read(int region, long offset, int size) {
        if (region == 0) {
            trappedRegion0++;
            return size == 4 ? Integer.toUnsignedLong(memory.segment().get(ValueLayout.JAVA_INT_UNALIGNED, offset))
                    : memory.segment().get(ValueLayout.JAVA_BYTE, offset) & 0xff;
        }
        return switch ((int) offset) {
            case 0x00 -> ID;
            case STATUS -> asserting ? 1 : 0;
            case COUNT -> acks;
            default -> 0;
        };
    }

    @Override
    public synchronized void write(int region, long offset, int size, long value) {
        if (region == 0) {
            trappedRegion0++;
            if (size == 4) {
                memory.segment().set(ValueLayout.JAVA_INT_UNALIGNED, offset, (int) value);
            }
            return;
        }
        switch ((int) offset) {
            case RAISE -> {
                raisesLeft = (int) value;
                if (!asserting && raisesLeft > 0) {
                    raisesLeft--;
                    asserting = true;
                }
            }
            case ACK -> {
                if (asserting) {
                    asserting = false;
                    acks++;
                    if (raisesLeft > 0) {
                        raisesLeft--;
                        asserting = true;
                    }
                }
            }
            default -> { }
        }
        fireIfDue();
    }

    /** The host's interrupt line: fires once per unmask while the device asserts (an edge one: per assertion). */
    private void fireIfDue() {
        if (asserting && !masked && trigger != null) {
            fired++;
            trigger.signal();
            if (level) {
                masked = true;
            } else {
                asserting = false;
            }
        }
    }

    @Override
    public synchronized void setTrigger(int irq, EventFd trigger) {
        this.trigger = trigger;
        fireIfDue();
    }

    @Override
    public synchronized void setUnmaskEventFd(int irq, EventFd unmask) {
        stopUnmasker();
        unmaskFd = unmask;
        if (unmask != null) {
            unmasker = new Thread(() -> {
                while (true) {
                    EventFd fd;
                    synchronized (this) {
                        if (closed || unmaskFd != unmask) {
                            return;
                        }
                        fd = unmask;
                    }
                    if (Poller.waitReadable(fd.fd(), 50)) {
                        fd.read();
                        unmask(0);
                    }
                }
            }, "in-process-unmask");
            unmasker.setDaemon(true);
            unmasker.start();
        }
    }

    private void stopUnmasker() {
        Thread t = unmasker;
        unmasker = null;
        unmaskFd = null;
        if (t != null && t != Thread.currentThread()) {
            // it sees unmaskFd changed within one poll; waiting here (holding the lock) would block it
            t.interrupt();
        }
    }

    @Override
    public synchronized void unmask(int irq) {
        unmasks++;
        masked = false;
        fireIfDue();
    }

    @Override
    public synchronized void mapDma(long iova, MemorySegment host) {
        dma.add(new long[] {iova, host.byteSize()});
    }

    @Override
    public synchronized void reset() {
        resets++;
        asserting = false;
        raisesLeft = 0;
        acks = 0;
    }

    @Override
    public void close() {
        Thread t;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            t = unmasker;
            stopUnmasker();
            trigger = null;
        }
        if (t != null) {
            try {
                t.join(5000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        memory.close();
    }

    public synchronized boolean closed() {
        return closed;
    }

    public synchronized int fired() {
        return fired;
    }

    public synchronized int unmasks() {
        return unmasks;
    }

    public synchronized int resets() {
        return resets;
    }

    public synchronized long trappedRegion0() {
        return trappedRegion0;
    }

    public synchronized List<long[]> dma() {
        return List.copyOf(dma);
    }

    public boolean unmaskEventFdSet() {
        synchronized (this) {
            return unmaskFd != null;
        }
    }

    public MemorySegment memory() {
        return memory.segment();
    }
}
