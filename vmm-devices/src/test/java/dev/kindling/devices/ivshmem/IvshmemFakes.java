package dev.kindling.devices.ivshmem;

import dev.kindling.bus.AddressSpace;
import dev.kindling.device.DeviceContext;
import dev.kindling.device.IoEvent;
import dev.kindling.devices.legacy.RecordingLine;
import dev.kindling.devices.virtio.RecordingThreads;
import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemorySlot;
import dev.kindling.sys.EventFd;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadFactory;

/** Fakes for the ivshmem tests: a context recording slots, and peers with real eventfds. */
final class IvshmemFakes {
    private IvshmemFakes() {}

    static final class Context implements DeviceContext {
        final RecordingLine irq = new RecordingLine(10);
        final RecordingThreads threads = new RecordingThreads("fake-ivshmem0");
        /** "map 0x.. size", "move 0x..", "close 0x..". */
        final List<String> slotCalls = new CopyOnWriteArrayList<>();
        final List<String> fatals = new CopyOnWriteArrayList<>();

        @Override public String name() { return "ivshmem0"; }
        @Override public GuestMemory memory() { throw new UnsupportedOperationException("no RAM needed"); }
        @Override public IrqLine irq() { return irq; }
        @Override public InterruptService interrupts() { throw new UnsupportedOperationException(); }
        @Override public IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch) {
            throw new UnsupportedOperationException();
        }
        /** Whether it binds a caller's eventfd (as KVM does) or refuses, as a context without ioeventfds. */
        volatile boolean binds;
        /** "bind 0x<address> 0x<value>", "unbind ...". */
        final List<String> bindCalls = new CopyOnWriteArrayList<>();
        @Override public IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch, EventFd signal) {
            if (!binds) {
                throw new UnsupportedOperationException();
            }
            String what = "0x" + Long.toHexString(address) + " 0x" + Long.toHexString(datamatch.orElseThrow());
            bindCalls.add("bind " + what);
            return new IoEvent() {
                @Override public AddressSpace space() { return space; }
                @Override public long address() { return address; }
                @Override public EventFd eventFd() { return signal; }
                @Override public void close() { bindCalls.add("unbind " + what); }
            };
        }
        @Override public MemorySlot mapMemory(long guestAddress, MemorySegment host, boolean readOnly) {
            slotCalls.add("map 0x" + Long.toHexString(guestAddress) + " " + host.byteSize() + (readOnly ? " ro" : " rw"));
            return new MemorySlot() {
                long at = guestAddress;
                @Override public long guestAddress() { return at; }
                @Override public long size() { return host.byteSize(); }
                @Override public boolean readOnly() { return readOnly; }
                @Override public void move(long to) { slotCalls.add("move 0x" + Long.toHexString(to)); at = to; }
                @Override public void close() { slotCalls.add("close 0x" + Long.toHexString(at)); }
            };
        }
        @Override public ThreadFactory threads() { return threads; }
        @Override public void reportFatal(String what, Throwable cause) { fatals.add(what + ": " + cause); }
    }

    /** Peers with real eventfds: {@link #addPeer} announces one, {@link #leave} removes it. */
    static final class Peers implements IvshmemPeers, AutoCloseable {
        final int ownId;
        final List<EventFd> own = new ArrayList<>();
        final Map<Integer, List<EventFd>> others = new java.util.concurrent.ConcurrentHashMap<>();
        final List<Listener> listeners = new CopyOnWriteArrayList<>();

        Peers(int ownId, int vectors) {
            this.ownId = ownId;
            for (int i = 0; i < vectors; i++) {
                own.add(EventFd.nonBlocking());
            }
        }

        List<EventFd> addPeer(int peer, int vectors) {
            List<EventFd> fds = new ArrayList<>();
            for (int i = 0; i < vectors; i++) {
                EventFd e = EventFd.nonBlocking();
                fds.add(e);
                for (Listener l : listeners) {
                    l.eventFdAdded(peer, i, e);
                }
            }
            others.put(peer, fds);
            return fds;
        }

        void leave(int peer) {
            for (Listener l : listeners) {
                l.peerLeft(peer);
            }
            others.remove(peer).forEach(EventFd::close);
        }

        @Override public int ownId() { return ownId; }
        @Override public List<EventFd> ownEventFds() { return List.copyOf(own); }
        @Override public AutoCloseable watch(Listener listener) {
            others.forEach((p, fds) -> {
                for (int i = 0; i < fds.size(); i++) {
                    listener.eventFdAdded(p, i, fds.get(i));
                }
            });
            listeners.add(listener);
            return () -> listeners.remove(listener);
        }

        @Override public void close() {
            own.forEach(EventFd::close);
            others.values().forEach(l -> l.forEach(EventFd::close));
        }
    }

    static int openFds() {
        String[] names = new java.io.File("/proc/self/fd").list();
        return names == null ? -1 : names.length;
    }
}
