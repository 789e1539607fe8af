package dev.kindling.devices.ivshmem;

import dev.kindling.bus.AddressSpace;
import dev.kindling.device.Device;
import dev.kindling.device.DeviceContext;
import dev.kindling.device.IoEvent;
import dev.kindling.device.Threads;
import dev.kindling.devices.pci.PciBar;
import dev.kindling.devices.pci.PciCapability;
import dev.kindling.devices.pci.PciFunction;
import dev.kindling.devices.pci.PciId;
import dev.kindling.memory.MemorySlot;
import dev.kindling.sys.Epoll;
import dev.kindling.sys.EventFd;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalLong;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * QEMU's ivshmem as a PCI function (hw/misc/ivshmem.c): BAR0 holds four 32-bit registers, BAR1 the
 * MSI-X table and PBA (doorbell flavour with MSI-X; served by the {@link Msix} the integrator hands
 * in), BAR2 the shared memory, mapped into the guest as a memory slot.
 *
 * <p>Registers: INTRMASK (0, read-write), INTRSTATUS (4, a read clears it; with INTx the line is
 * {@code status & mask != 0}), IVPOSITION (8, this peer's id; QEMU reads -1 until the server sent the
 * memory, which here is there from the start; 0 for the plain flavour, as QEMU's plain reads), and
 * DOORBELL (12, write-only, {@code peer << 16 | vector}: signals that peer's eventfd for that vector;
 * an unknown peer or vector is ignored). As QEMU does, each known peer's doorbell value is bound to
 * that peer's eventfd by an ioeventfd with a datamatch while BAR0 decodes, so a ring never leaves the
 * kernel; a context that cannot bind a caller's eventfd, and any other value, take the MMIO write path.
 *
 * <p>Incoming interrupts: with MSI-X bound to the own eventfds ({@link Msix#onOwnEventFds}) the
 * hypervisor raises vector i on a signal of eventfd i; otherwise a device thread waits on this
 * peer's own eventfds and a signal on eventfd i raises MSI-X vector i or, with INTx, sets INTRSTATUS
 * bit 0. While quiesced it raises nothing; the
 * signals stay counted in the eventfds and are raised on resume.
 *
 * <p>Thread safety: vCPU threads call the register methods, the peers' server thread changes peers
 * concurrently; a doorbell never signals an eventfd after {@link IvshmemPeers.Listener#peerLeft}
 * returned for its peer.
 */
public final class IvshmemDevice implements PciFunction {
    private static final System.Logger LOG = System.getLogger(IvshmemDevice.class.getName());

    /** Vectors per peer: QEMU allows any 32-bit count; 64 is far more than any ivshmem user needs and bounds the MSI-X table. */
    public static final int MAX_VECTORS = 64;
    public static final int REGISTER_BAR = 0, MSIX_BAR = 1, MEMORY_BAR = 2;
    public static final long REGISTER_BAR_SIZE = 256;
    /** BAR1: an MSI-X table of up to 64 vectors (1 KiB) and its PBA fit a page. */
    public static final long MSIX_BAR_SIZE = 4096;
    public static final int INTRMASK = 0, INTRSTATUS = 4, IVPOSITION = 8, DOORBELL = 12;
    public static final PciId ID = new PciId(0x1af4, 0x1110, 0x05_00_00, 1, 0x1af4, 0x1100);

    /** Raises MSI-X vector {@code vector} (the integrator adapts its MSI-X table to this). */
    @FunctionalInterface
    public interface Interrupts {
        void raise(int vector);
    }

    /** Accesses to a register BAR the device does not serve itself (the MSI-X table and PBA). */
    public interface BarDelegate {
        long read(long offset, int size);

        void write(long offset, int size, long value);
    }

    /**
     * The MSI-X of a doorbell device: how to raise a vector, who serves BAR1 (offsets within it: the
     * table at 0, as the integrator lays it out), and the capability that describes it. With
     * {@code onOwnEventFds} the integrator made vector i's MSI fire on this peer's own eventfd i in the
     * hypervisor (QEMU's irqfd path), so a ring reaches the guest with no thread of the VMM's in
     * between: the device then neither reads those eventfds nor uses {@code interrupts}, and a
     * quiesced device no longer holds their interrupts back.
     */
    public record Msix(Interrupts interrupts, BarDelegate bar, PciCapability capability, boolean onOwnEventFds) {
        public Msix {
            Objects.requireNonNull(interrupts, "interrupts");
            Objects.requireNonNull(bar, "bar");
            Objects.requireNonNull(capability, "capability");
        }

        public Msix(Interrupts interrupts, BarDelegate bar, PciCapability capability) {
            this(interrupts, bar, capability, false);
        }
    }

    private final DeviceContext context;
    private final IvshmemMemory memory;
    private final IvshmemPeers peers; // null: plain
    private final int vectors;
    private final Msix msix; // null: INTx (or plain)
    private final List<PciBar> bars;
    /**
     * This peer's eventfds, one per vector, taken once: asking the peers under {@link #peersLock} would
     * take their lock after ours, while their reader thread calls our listener holding theirs.
     */
    private final List<EventFd> ownFds;

    // Registers, guarded by this.
    private int intrMask;
    private int intrStatus;

    // Other peers' eventfds per vector; arrays replaced, never changed. Doorbells hold the read lock
    // while signalling, peerLeft the write lock, so no signal reaches an eventfd being closed.
    private final Map<Integer, EventFd[]> peerFds = new ConcurrentHashMap<>();
    private final ReadWriteLock peersLock = new ReentrantReadWriteLock();
    private final AutoCloseable watch;

    // BAR2's slot, guarded by this.
    private MemorySlot slot;

    // Doorbell ioeventfds, by the DOORBELL value they match, while BAR0 decodes; guarded by bindings.
    private final Object bindings = new Object();
    private final Map<Integer, IoEvent> bound = new HashMap<>();
    private long doorbellAt = -1; // BAR0's DOORBELL address, -1: not decoding
    private boolean bindable = true; // false once the context said it cannot

    // The incoming thread and its pause gate.
    private final Epoll epoll;
    private final EventFd wake;
    private final Thread thread;
    private final ReentrantLock gate = new ReentrantLock();
    private final Condition unpaused = gate.newCondition();
    private boolean paused; // guarded by gate
    private volatile boolean closed;

    private IvshmemDevice(DeviceContext context, IvshmemMemory memory, IvshmemPeers peers, int vectors, Msix msix) {
        this.context = Objects.requireNonNull(context, "context");
        this.memory = Objects.requireNonNull(memory, "memory");
        long size = memory.size();
        if (size < IvshmemMemory.MIN_SIZE || Long.bitCount(size) != 1) {
            throw new IllegalArgumentException("ivshmem memory size " + size + " is not a power of two of at least "
                    + IvshmemMemory.MIN_SIZE);
        }
        this.peers = peers;
        this.vectors = vectors;
        this.msix = msix;
        List<PciBar> b = new ArrayList<>();
        b.add(new PciBar(REGISTER_BAR, REGISTER_BAR_SIZE, PciBar.Kind.MEMORY32, false));
        if (msix != null) {
            b.add(new PciBar(MSIX_BAR, MSIX_BAR_SIZE, PciBar.Kind.MEMORY32, false));
        }
        b.add(new PciBar(MEMORY_BAR, size, PciBar.Kind.MEMORY64, true));
        this.bars = List.copyOf(b);
        List<EventFd> own = peers == null ? List.of() : peers.ownEventFds();
        if (own.size() < vectors) {
            throw new IllegalArgumentException("ivshmem peer " + peers.ownId() + " has " + own.size()
                    + " eventfds for " + vectors + " vectors");
        }
        this.ownFds = List.copyOf(own.subList(0, vectors));
        if (peers == null || msix != null && msix.onOwnEventFds()) {
            this.watch = peers == null ? null : peers.watch(new PeerListener());
            this.epoll = null;
            this.wake = null;
            this.thread = null;
            return;
        }
        Epoll e = null;
        EventFd w = null;
        AutoCloseable wt = null;
        try {
            e = Epoll.create(vectors + 1);
            w = EventFd.nonBlocking();
            for (int i = 0; i < vectors; i++) {
                e.add(ownFds.get(i).fd(), Epoll.EPOLLIN, i);
            }
            e.add(w.fd(), Epoll.EPOLLIN, vectors);
            wt = peers.watch(new PeerListener());
            this.epoll = e;
            this.wake = w;
            this.watch = wt;
            this.thread = context.threads().newThread(this::incoming);
            thread.start();
        } catch (RuntimeException | Error ex) {
            closeQuietly(wt, ex);
            if (w != null) {
                w.close();
            }
            if (e != null) {
                e.close();
            }
            throw ex;
        }
    }

    /** The plain flavour (QEMU's ivshmem-plain): registers and memory, no interrupts, no peers. */
    public static IvshmemDevice plain(DeviceContext context, IvshmemMemory memory) {
        return new IvshmemDevice(context, memory, null, 0, null);
    }

    /**
     * The doorbell flavour (QEMU's ivshmem-doorbell): {@code vectors} interrupt vectors (1 to
     * {@link #MAX_VECTORS}), raised through {@code msix} or, when it is null, the legacy INTx line
     * {@link DeviceContext#irq()}. The device neither closes {@code memory} nor {@code peers}: close
     * the device first (its thread reads the own eventfds of {@code peers} until then).
     */
    public static IvshmemDevice doorbell(DeviceContext context, IvshmemMemory memory, IvshmemPeers peers, int vectors,
            Msix msix) {
        Objects.requireNonNull(peers, "peers");
        if (vectors < 1 || vectors > MAX_VECTORS) {
            throw new IllegalArgumentException("ivshmem vectors " + vectors + " is not in 1-" + MAX_VECTORS);
        }
        return new IvshmemDevice(context, memory, peers, vectors, msix);
    }

    @Override
    public String name() {
        return context.name();
    }

    @Override
    public PciId id() {
        return ID;
    }

    @Override
    public List<PciBar> bars() {
        return bars;
    }

    /** INTA# for the doorbell flavour without MSI-X; none otherwise (nothing would ever raise it). */
    @Override
    public int interruptPin() {
        return peers != null && msix == null ? 1 : 0;
    }

    @Override
    public List<PciCapability> capabilities() {
        return msix == null ? List.of() : List.of(msix.capability());
    }

    @Override
    public long readBar(int bar, long offset, int size) {
        long ones = Device.ones(size);
        if (bar == MSIX_BAR && msix != null) {
            return msix.bar().read(offset, size);
        }
        if (bar != REGISTER_BAR || offset < 0 || offset + size > REGISTER_BAR_SIZE || (size != 1 && size != 2 && size != 4)
                || (offset & (size - 1)) != 0) {
            return ones;
        }
        // The registers are 32-bit, as QEMU's (min and max access 4): a narrower read sees part of one.
        long dword = register(offset & ~3L) & 0xffff_ffffL;
        return (dword >>> ((offset & 3) * 8)) & ones;
    }

    private long register(long offset) {
        if (offset == INTRMASK) {
            synchronized (this) {
                return intrMask;
            }
        } else if (offset == INTRSTATUS) {
            synchronized (this) {
                int s = intrStatus;
                intrStatus = 0;
                updateLine();
                return s;
            }
        } else if (offset == IVPOSITION) {
            return peers == null ? 0 : peers.ownId();
        }
        return 0; // DOORBELL and the rest read 0, as QEMU's
    }

    @Override
    public void writeBar(int bar, long offset, int size, long value) {
        if (bar == MSIX_BAR && msix != null) {
            msix.bar().write(offset, size, value);
            return;
        }
        if (bar != REGISTER_BAR || size != 4 || offset < 0 || offset + size > REGISTER_BAR_SIZE || (offset & 3) != 0) {
            LOG.log(Level.TRACE, "{0}: ignored write of {1} bytes at 0x{2} in BAR{3}", name(), size,
                    Long.toHexString(offset), bar);
            return;
        }
        int v = (int) value;
        if (offset == INTRMASK) {
            synchronized (this) {
                intrMask = v;
                updateLine();
            }
        } else if (offset == INTRSTATUS) {
            synchronized (this) {
                intrStatus = v;
                updateLine();
            }
        } else if (offset == DOORBELL) {
            ring(v >>> 16, v & 0xffff);
        }
    }

    /** Signals peer {@code peer}'s eventfd for {@code vector}, if it has one. */
    private void ring(int peer, int vector) {
        peersLock.readLock().lock();
        try {
            EventFd fd;
            if (peers != null && peer == peers.ownId()) {
                // Ringing itself, as QEMU allows (its peer table holds its own eventfds too).
                fd = vector < vectors ? ownFds.get(vector) : null;
            } else {
                EventFd[] fds = peerFds.get(peer);
                fd = fds != null && vector < fds.length ? fds[vector] : null;
            }
            if (fd == null) {
                LOG.log(Level.DEBUG, "{0}: doorbell to unknown peer {1} vector {2} ignored", name(), peer, vector);
                return;
            }
            fd.signal();
        } catch (RuntimeException e) {
            // The peer's eventfd failed (closed before peerLeft by a broken IvshmemPeers): not the guest's fault, not fatal.
            LOG.log(Level.WARNING, name() + ": doorbell to peer " + peer + " vector " + vector + " failed", e);
        } finally {
            peersLock.readLock().unlock();
        }
    }

    /** Drives INTx from status and mask; only the INTx doorbell flavour has a line. Holds this. */
    private void updateLine() {
        if (peers != null && msix == null) {
            context.irq().set((intrStatus & intrMask) != 0);
        }
    }

    @Override
    public void barPlaced(int bar, OptionalLong address) {
        if (bar == REGISTER_BAR) {
            placeDoorbells(address.isPresent() ? address.getAsLong() + DOORBELL : -1);
            return;
        }
        if (bar != MEMORY_BAR) {
            return;
        }
        synchronized (this) {
            if (closed) {
                return;
            }
            if (address.isEmpty()) {
                if (slot != null) {
                    slot.close();
                    slot = null;
                }
            } else if (slot == null) {
                slot = context.mapMemory(address.getAsLong(), memory.segment(), false);
            } else if (slot.guestAddress() != address.getAsLong()) {
                slot.move(address.getAsLong());
            }
        }
    }

    /** Moves every doorbell binding to {@code at} (-1: none). */
    private void placeDoorbells(long at) {
        if (peers == null) {
            return;
        }
        synchronized (bindings) {
            if (at == doorbellAt) {
                return;
            }
            bound.values().forEach(this::unbound);
            bound.clear();
            doorbellAt = closed ? -1 : at;
        }
        peersLock.readLock().lock();
        try {
            for (int v = 0; v < vectors; v++) {
                bind(peers.ownId(), v, ownFds.get(v));
            }
            peerFds.forEach((peer, fds) -> {
                for (int v = 0; v < fds.length; v++) {
                    if (fds[v] != null) {
                        bind(peer, v, fds[v]);
                    }
                }
            });
        } finally {
            peersLock.readLock().unlock();
        }
    }

    /** Binds the doorbell value for {@code peer} and {@code vector} to {@code fd}, if BAR0 decodes. */
    private void bind(int peer, int vector, EventFd fd) {
        synchronized (bindings) {
            int value = peer << 16 | vector;
            if (doorbellAt < 0 || !bindable || bound.containsKey(value)) {
                return;
            }
            try {
                bound.put(value, context.ioEvent(AddressSpace.MMIO, doorbellAt, 4,
                        OptionalLong.of(value & 0xffff_ffffL), fd));
            } catch (UnsupportedOperationException e) {
                bindable = false; // rings take the write path
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, name() + ": doorbell to peer " + peer + " vector " + vector
                        + " cannot be bound to its eventfd; it takes the write path", e);
            }
        }
    }

    /** Closes a doorbell binding; one that fails to close is logged, so the others still close. */
    private void unbound(IoEvent e) {
        try {
            e.close();
        } catch (RuntimeException x) {
            LOG.log(Level.WARNING, name() + ": removing the doorbell at 0x" + Long.toHexString(e.address()) + " failed", x);
        }
    }

    /** Drops the bindings of {@code peer} (before its eventfds close). */
    private void unbind(int peer) {
        synchronized (bindings) {
            bound.entrySet().removeIf(e -> {
                if (e.getKey() >>> 16 == peer) {
                    unbound(e.getValue());
                    return true;
                }
                return false;
            });
        }
    }

    @Override
    public void reset() {
        synchronized (this) {
            intrMask = 0;
            intrStatus = 0;
            updateLine();
        }
    }

    @Override
    public void quiesce() {
        if (thread == null) {
            return;
        }
        gate.lock();
        try {
            paused = true;
        } finally {
            gate.unlock();
        }
    }

    @Override
    public void resume() {
        if (thread == null) {
            return;
        }
        gate.lock();
        try {
            paused = false;
            unpaused.signalAll();
        } finally {
            gate.unlock();
        }
    }

    /** The incoming thread: own eventfd i signalled -> raise vector i; stops on close. */
    private void incoming() {
        try {
            while (!closed) {
                int n = epoll.wait(-1);
                for (int i = 0; i < n && !closed; i++) {
                    int token = (int) epoll.token(i);
                    if (token == vectors) {
                        wake.read();
                        continue;
                    }
                    gate.lock();
                    try {
                        while (paused && !closed) {
                            unpaused.awaitUninterruptibly();
                        }
                        if (closed) {
                            return;
                        }
                        ownFds.get(token).read();
                        raise(token);
                    } finally {
                        gate.unlock();
                    }
                }
            }
        } catch (RuntimeException e) {
            if (!closed) {
                context.reportFatal("ivshmem interrupt thread of " + name() + " failed", e);
            }
        }
    }

    private void raise(int vector) {
        if (msix != null) {
            msix.interrupts().raise(vector);
        } else {
            synchronized (this) {
                intrStatus |= 1;
                updateLine();
            }
        }
    }

    /** Stops the interrupt thread, unmaps BAR2 and stops watching peers; the memory and peers stay their owner's. */
    @Override
    public void close() {
        Throwable failure = null;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            if (slot != null) {
                slot.close();
                slot = null;
            }
        }
        placeDoorbells(-1);
        if (thread != null) {
            gate.lock();
            try {
                unpaused.signalAll();
            } finally {
                gate.unlock();
            }
            wake.signal();
            if (!Threads.join(thread, Duration.ofSeconds(5))) {
                // left open: the thread may still read them, and a closed number could be reused under it
                LOG.log(Level.WARNING, "{0}: the ivshmem interrupt thread did not stop within 5 s", name());
            } else {
                epoll.close();
                wake.close();
            }
        }
        if (watch != null) {
            try {
                watch.close();
            } catch (Exception e) {
                failure = e;
            }
            peersLock.writeLock().lock();
            try {
                peerFds.clear();
            } finally {
                peersLock.writeLock().unlock();
            }
        }
        if (failure != null) {
            throw new IllegalStateException("stopping the peer watch of " + name() + " failed", failure);
        }
    }

    private static void closeQuietly(AutoCloseable c, Throwable into) {
        if (c != null) {
            try {
                c.close();
            } catch (Exception e) {
                into.addSuppressed(e);
            }
        }
    }

    private final class PeerListener implements IvshmemPeers.Listener {
        @Override
        public void eventFdAdded(int peer, int vector, EventFd eventFd) {
            if (vector < 0 || vector >= MAX_VECTORS || peer < 0 || peer > 0xffff) {
                LOG.log(Level.DEBUG, "{0}: peer {1} vector {2} out of range, not rung", name(), peer, vector);
                return;
            }
            peersLock.writeLock().lock();
            try {
                EventFd[] old = peerFds.get(peer);
                EventFd[] fds = old == null ? new EventFd[vector + 1]
                        : Arrays.copyOf(old, Math.max(old.length, vector + 1));
                fds[vector] = eventFd;
                peerFds.put(peer, fds);
                bind(peer, vector, eventFd);
            } finally {
                peersLock.writeLock().unlock();
            }
        }

        @Override
        public void peerLeft(int peer) {
            peersLock.writeLock().lock();
            try {
                unbind(peer);
                peerFds.remove(peer);
            } finally {
                peersLock.writeLock().unlock();
            }
        }
    }
}
