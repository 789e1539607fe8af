package dev.kindling.testing;

import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.boot.BootCpuState;
import dev.kindling.bus.AddressSpace;
import dev.kindling.bus.Bus;
import dev.kindling.device.IoEvent;
import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.irq.MsiVector;
import dev.kindling.machine.ExitDispatch;
import dev.kindling.machine.Platform;
import dev.kindling.machine.StopReason;
import dev.kindling.machine.VcpuEvent;
import dev.kindling.machine.VirtualCpu;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.memory.MemorySlot;
import dev.kindling.sys.EventFd;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalLong;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

/**
 * A {@link Platform} without a hypervisor, so that a whole {@link dev.kindling.machine.Machine} runs in
 * a unit test: each vCPU replays a script of port and MMIO accesses through the machine's
 * {@link ExitDispatch}, exactly as a KVM vCPU hands over its exits, and records what its reads
 * returned. A vCPU whose script is done waits to be kicked, as a halted CPU would. Writes that match
 * a registered ioeventfd signal it instead of reaching the bus, as in KVM. Interrupts are recorded
 * ({@link #interrupts()} is a {@link FakeInterrupts}).
 */
public final class FakePlatform implements Platform {
    /** How long a vCPU with nothing left to do waits for a kick before looking again. */
    private static final long IDLE_WAIT_MS = 50;

    /** One guest access: {@code values} are an OUT's or MMIO write's data; a read has {@code count} values. */
    public record Access(AddressSpace space, long address, int size, boolean write, int count, long[] values) {
        public Access {
            values = values.clone();
        }

        @Override
        public long[] values() {
            return values.clone();
        }

        public static Access in(int port, int size) {
            return new Access(AddressSpace.PIO, port, size, false, 1, new long[0]);
        }

        /** {@code rep ins}: {@code count} reads in one exit. */
        public static Access insString(int port, int size, int count) {
            return new Access(AddressSpace.PIO, port, size, false, count, new long[0]);
        }

        /** One OUT, or {@code rep outs} with several values. */
        public static Access out(int port, int size, long... values) {
            return new Access(AddressSpace.PIO, port, size, true, values.length, values);
        }

        public static Access mmioRead(long address, int len) {
            return new Access(AddressSpace.MMIO, address, len, false, 1, new long[0]);
        }

        public static Access mmioWrite(long address, int len, long value) {
            return new Access(AddressSpace.MMIO, address, len, true, 1, new long[] {value});
        }
    }

    private final int maxVcpus;
    private final List<FakeVcpu> vcpus = new CopyOnWriteArrayList<>();
    private final List<MemoryRegion> ram = new ArrayList<>();
    private final List<FakeIoEvent> ioEvents = new CopyOnWriteArrayList<>();
    private final List<FakeSlot> slots = new CopyOnWriteArrayList<>();
    private final FakeInterrupts interrupts = new FakeInterrupts();
    private ExitDispatch exits;
    private volatile boolean closed;

    public FakePlatform() {
        this(8);
    }

    public FakePlatform(int maxVcpus) {
        this.maxVcpus = maxVcpus;
    }

    /** A stand-in for the hypervisor's VM-wide state (its clock, say), which snapshots carry. */
    public volatile long clock;

    @Override
    public void saveState(StateWriter out) {
        out.putString("fake").putLong(clock);
    }

    @Override
    public void restoreState(StateReader in) {
        if (!in.getString().equals("fake")) {
            throw in.bad("not a fake platform's state");
        }
        clock = in.getLong();
    }

    @Override
    public synchronized void addMemory(MemoryRegion region) {
        ram.add(region);
    }

    public synchronized List<MemoryRegion> ram() {
        return List.copyOf(ram);
    }

    @Override
    public synchronized VirtualCpu createVcpu(int index, int count, Bus pio, Bus mmio, boolean strictMmio) {
        if (exits == null || !exits.serves(pio, mmio, strictMmio)) {
            exits = new ExitDispatch(pio, mmio, strictMmio);
        }
        FakeVcpu v = new FakeVcpu(index, exits);
        vcpus.add(v);
        return v;
    }

    /** vCPU {@code index}, to give it a script. */
    public FakeVcpu vcpu(int index) {
        return vcpus.get(index);
    }

    @Override
    public FakeInterrupts interrupts() {
        return interrupts;
    }

    @Override
    public IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch) {
        FakeIoEvent e = new FakeIoEvent(space, address, length, datamatch, EventFd.nonBlocking());
        ioEvents.add(e);
        return e;
    }

    @Override
    public MemorySlot mapMemory(long guestAddress, MemorySegment host, boolean readOnly) {
        FakeSlot s = new FakeSlot(guestAddress, host.byteSize(), readOnly);
        slots.add(s);
        return s;
    }

    /** The device slots not closed. */
    public List<MemorySlot> slots() {
        return List.copyOf(slots);
    }

    @Override
    public int maxVcpus() {
        return maxVcpus;
    }

    public boolean isClosed() {
        return closed;
    }

    @Override
    public void close() {
        closed = true;
        ioEvents.forEach(FakeIoEvent::close);
    }

    private boolean takenByIoEvent(Access a, long value) {
        for (FakeIoEvent e : ioEvents) {
            if (e.space == a.space() && e.address == a.address() && (e.length == 0 || e.length == a.size())
                    && (e.datamatch.isEmpty() || e.datamatch.getAsLong() == value)) {
                e.fd.signal();
                return true;
            }
        }
        return false;
    }

    /** A vCPU that replays its script through the dispatcher. */
    public final class FakeVcpu implements VirtualCpu {
        private final int index;
        private final ExitDispatch exits;
        private final List<Access> script = new CopyOnWriteArrayList<>();
        private final List<Long> reads = new CopyOnWriteArrayList<>();
        private int next;
        private boolean kicked;
        private BootCpuState bootState;

        FakeVcpu(int index, ExitDispatch exits) {
            this.index = index;
            this.exits = exits;
        }

        /** Appends accesses to what this vCPU does. */
        public FakeVcpu script(Access... accesses) {
            script.addAll(List.of(accesses));
            synchronized (this) {
                notifyAll();
            }
            return this;
        }

        /** Every value the script's reads returned, in order. */
        public List<Long> reads() {
            return List.copyOf(reads);
        }

        public synchronized BootCpuState bootState() {
            return bootState;
        }

        @Override
        public int index() {
            return index;
        }

        /** The script position: what a snapshot of this vCPU carries. */
        public synchronized int position() {
            return next;
        }

        @Override
        public synchronized void saveState(StateWriter out) {
            out.putInt(next);
        }

        @Override
        public synchronized void restoreState(StateReader in) {
            next = in.getInt("script position", 0, script.size());
        }

        @Override
        public synchronized void setBootState(BootCpuState state) {
            this.bootState = Objects.requireNonNull(state);
        }

        @Override
        public VcpuEvent run() {
            while (true) {
                Access a;
                synchronized (this) {
                    while (next >= script.size() && !kicked) {
                        try {
                            TimeUnit.MILLISECONDS.timedWait(this, IDLE_WAIT_MS);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                            return VcpuEvent.KICKED;
                        }
                    }
                    if (kicked) {
                        kicked = false;
                        return VcpuEvent.KICKED;
                    }
                    a = script.get(next++);
                }
                StopReason end = perform(a);
                if (end != null) {
                    return new VcpuEvent.Ended(end);
                }
            }
        }

        private StopReason perform(Access a) {
            if (a.write() && a.count() == 1 && takenByIoEvent(a, a.values()[0])) {
                return null;
            }
            if (a.space() == AddressSpace.PIO) {
                long[] data = a.write() ? a.values() : new long[a.count()];
                exits.port(new ExitDispatch.PortAccess() {
                    public int port() {
                        return (int) a.address();
                    }

                    public int size() {
                        return a.size();
                    }

                    public int count() {
                        return a.count();
                    }

                    public boolean isIn() {
                        return !a.write();
                    }

                    public long value(int i) {
                        return data[i];
                    }

                    public void setValue(int i, long value) {
                        data[i] = value & mask(a.size());
                    }
                });
                if (!a.write()) {
                    Arrays.stream(data).forEach(reads::add);
                }
                return null;
            }
            long[] result = {0};
            StopReason end = exits.mmio(index, new ExitDispatch.MmioAccess() {
                public long address() {
                    return a.address();
                }

                public int len() {
                    return a.size();
                }

                public boolean isWrite() {
                    return a.write();
                }

                public long data() {
                    return a.values()[0];
                }

                public void complete(long value) {
                    result[0] = value & mask(a.size());
                }
            });
            if (!a.write()) {
                reads.add(result[0]);
            }
            return end;
        }

        @Override
        public synchronized void kick() {
            kicked = true;
            notifyAll();
        }

        @Override
        public void close() {}
    }

    private static long mask(int size) {
        return size >= 8 ? -1L : (1L << (8 * size)) - 1;
    }

    private final class FakeIoEvent implements IoEvent {
        final AddressSpace space;
        final long address;
        final int length;
        final OptionalLong datamatch;
        final EventFd fd;

        FakeIoEvent(AddressSpace space, long address, int length, OptionalLong datamatch, EventFd fd) {
            this.space = space;
            this.address = address;
            this.length = length;
            this.datamatch = datamatch;
            this.fd = fd;
        }

        public AddressSpace space() {
            return space;
        }

        public long address() {
            return address;
        }

        public EventFd eventFd() {
            return fd;
        }

        public void close() {
            ioEvents.remove(this);
            fd.close();
        }
    }

    private final class FakeSlot implements MemorySlot {
        private volatile long guestAddress;
        private final long size;
        private final boolean readOnly;

        FakeSlot(long guestAddress, long size, boolean readOnly) {
            this.guestAddress = guestAddress;
            this.size = size;
            this.readOnly = readOnly;
        }

        public long guestAddress() {
            return guestAddress;
        }

        public long size() {
            return size;
        }

        public boolean readOnly() {
            return readOnly;
        }

        public void move(long to) {
            guestAddress = to;
        }

        public void close() {
            slots.remove(this);
        }
    }

    /**
     * Recorded interrupts: each line's events ({@code "pulse"}, {@code "high"}, {@code "low"}), MSI
     * vectors with PCI's pending semantics, and {@link #endOfInterrupt(int)} to play a guest's EOI.
     */
    public static final class FakeInterrupts implements InterruptService {
        private final Map<Integer, List<String>> events = new HashMap<>();
        private final Map<Integer, List<Runnable>> eoiListeners = new HashMap<>();
        private final List<FakeMsiVector> vectors = new CopyOnWriteArrayList<>();

        @Override
        public IrqLine line(int gsi) {
            return new IrqLine() {
                public int gsi() {
                    return gsi;
                }

                public void pulse() {
                    record(gsi, "pulse");
                }

                public void set(boolean level) {
                    record(gsi, level ? "high" : "low");
                }
            };
        }

        private synchronized void record(int gsi, String event) {
            events.computeIfAbsent(gsi, g -> new ArrayList<>()).add(event);
            notifyAll();
        }

        /** What the lines of {@code gsi} did, in order. */
        public synchronized List<String> events(int gsi) {
            return List.copyOf(events.getOrDefault(gsi, List.of()));
        }

        @Override
        public MsiVector msiVector() {
            FakeMsiVector v = new FakeMsiVector();
            vectors.add(v);
            return v;
        }

        public List<FakeMsiVector> vectors() {
            return List.copyOf(vectors);
        }

        @Override
        public synchronized AutoCloseable onEndOfInterrupt(int gsi, Runnable listener) {
            List<Runnable> l = eoiListeners.computeIfAbsent(gsi, g -> new CopyOnWriteArrayList<>());
            l.add(listener);
            return () -> l.remove(listener);
        }

        /** The guest ended the interrupt of {@code gsi}: runs its listeners on this thread. */
        public void endOfInterrupt(int gsi) {
            List<Runnable> l;
            synchronized (this) {
                l = eoiListeners.getOrDefault(gsi, List.of());
            }
            l.forEach(Runnable::run);
        }
    }

    /** An MSI vector that counts deliveries; triggers while masked are pending until unmasked. */
    public static final class FakeMsiVector implements MsiVector {
        private long address;
        private int data;
        private boolean masked = true;
        private boolean pending;
        private int delivered;
        private boolean closed;

        public synchronized void configure(long address, int data) {
            this.address = address;
            this.data = data;
        }

        public synchronized long address() {
            return address;
        }

        public synchronized int data() {
            return data;
        }

        public synchronized void setMasked(boolean masked) {
            this.masked = masked;
            if (!masked && pending) {
                pending = false;
                delivered++;
            }
        }

        public synchronized boolean masked() {
            return masked;
        }

        public synchronized boolean pending() {
            return pending;
        }

        public synchronized void trigger() {
            if (masked) {
                pending = true;
            } else {
                delivered++;
            }
        }

        /** How many interrupts reached the guest. */
        public synchronized int delivered() {
            return delivered;
        }

        public EventFd irqfd() {
            throw new UnsupportedOperationException("the fake platform's MSI vectors have no eventfd");
        }

        public synchronized boolean closed() {
            return closed;
        }

        public synchronized void close() {
            closed = true;
        }
    }
}
