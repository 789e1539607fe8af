package dev.kindling.kvm.platform;

import dev.kindling.kvm.KvmConstants;
import dev.kindling.kvm.Vm;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.memory.MemorySlot;
import dev.kindling.sys.Libc;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Objects;

/**
 * The VM's KVM memory slots: guest RAM, added once, and device slots that move and go away at run
 * time. Slot numbers are reused once freed; no two slots overlap (KVM refuses that with a bare
 * EEXIST, so the check here names both).
 */
final class MemorySlots {
    private final Vm vm;
    private final int limit;
    private final boolean readOnlySupported;
    // guarded by this
    private final BitSet used = new BitSet();
    private final List<Range> ram = new ArrayList<>();
    private final List<Slot> devices = new ArrayList<>();
    private boolean vmOpen = true;

    private record Range(long start, long size, String what) {
        boolean overlaps(long s, long n) {
            return s < start + size && start < s + n;
        }

        @Override
        public String toString() {
            return String.format("%s [0x%x, 0x%x)", what, start, start + size);
        }
    }

    /**
     * @param limit how many slots KVM gives a VM (KVM_CAP_NR_MEMSLOTS)
     * @param readOnlySupported whether KVM has KVM_CAP_READONLY_MEM
     */
    MemorySlots(Vm vm, int limit, boolean readOnlySupported) {
        this.vm = vm;
        this.limit = limit;
        this.readOnlySupported = readOnlySupported;
    }

    synchronized void addRam(MemoryRegion region) {
        checkFree(region.guestAddress(), region.size(), null, "guest RAM");
        int slot = allocate();
        try {
            vm.setUserMemoryRegion(slot, region);
        } catch (RuntimeException e) {
            used.clear(slot);
            throw e;
        }
        ram.add(new Range(region.guestAddress(), region.size(), "guest RAM"));
    }

    synchronized MemorySlot map(long guestAddress, MemorySegment host, boolean readOnly) {
        Objects.requireNonNull(host, "host");
        if (!vmOpen) {
            throw new IllegalStateException("the VM is closed");
        }
        if (readOnly && !readOnlySupported) {
            throw new UnsupportedOperationException("a read-only memory slot needs KVM_CAP_READONLY_MEM, which this host's KVM lacks");
        }
        if (!host.isNative()) {
            throw new IllegalArgumentException("device memory must be native memory, got a heap segment");
        }
        long page = Libc.pageSize();
        if (host.byteSize() <= 0 || host.byteSize() % page != 0 || host.address() % page != 0) {
            throw new IllegalArgumentException(String.format("device memory at host 0x%x of 0x%x bytes is not whole, aligned pages",
                    host.address(), host.byteSize()));
        }
        checkPlacement(guestAddress, host.byteSize());
        checkFree(guestAddress, host.byteSize(), null, "device slot");
        int number = allocate();
        Slot s = new Slot(number, host, readOnly, guestAddress);
        try {
            s.install(guestAddress);
        } catch (RuntimeException e) {
            used.clear(number);
            throw e;
        }
        devices.add(s);
        return s;
    }

    private static void checkPlacement(long guestAddress, long size) {
        long page = Libc.pageSize();
        if (guestAddress < 0 || guestAddress % page != 0 || guestAddress + size < guestAddress) {
            throw new IllegalArgumentException(String.format("device slot address 0x%x (+0x%x) is not page-aligned or overflows",
                    guestAddress, size));
        }
    }

    private void checkFree(long start, long size, Slot self, String what) {
        for (Range r : ram) {
            if (r.overlaps(start, size)) {
                throw new IllegalArgumentException(String.format("%s [0x%x, 0x%x) overlaps %s", what, start, start + size, r));
            }
        }
        for (Slot d : devices) {
            if (d != self && d.range().overlaps(start, size)) {
                throw new IllegalArgumentException(String.format("%s [0x%x, 0x%x) overlaps %s", what, start, start + size, d.range()));
            }
        }
    }

    private int allocate() {
        int n = used.nextClearBit(0);
        if (n >= limit) {
            throw new IllegalStateException("no KVM memory slot left: all " + limit + " are in use");
        }
        used.set(n);
        return n;
    }

    /** The VM is gone, and with it every slot. */
    synchronized void release() {
        vmOpen = false;
        devices.clear();
    }

    private final class Slot implements MemorySlot {
        private final int number;
        private final MemorySegment host;
        private final boolean readOnly;
        // guarded by MemorySlots.this
        private long guestAddress;
        private boolean closed;

        Slot(int number, MemorySegment host, boolean readOnly, long guestAddress) {
            this.number = number;
            this.host = host;
            this.readOnly = readOnly;
            this.guestAddress = guestAddress;
        }

        Range range() {
            return new Range(guestAddress, host.byteSize(), "device slot " + number);
        }

        void install(long at) {
            vm.setUserMemoryRegion(number, readOnly ? KvmConstants.MEM_READONLY : 0, at, host);
        }

        @Override
        public long guestAddress() {
            synchronized (MemorySlots.this) {
                return guestAddress;
            }
        }

        @Override
        public long size() {
            return host.byteSize();
        }

        @Override
        public boolean readOnly() {
            return readOnly;
        }

        /**
         * One KVM_SET_USER_MEMORY_REGION on the same slot with a new address (KVM_MR_MOVE): the range is
         * never without a slot, and if KVM refuses, the slot stays where it was.
         */
        @Override
        public void move(long newAddress) {
            synchronized (MemorySlots.this) {
                if (closed || !vmOpen) {
                    throw new IllegalStateException("device slot " + number + " is closed");
                }
                if (newAddress == guestAddress) {
                    return;
                }
                checkPlacement(newAddress, host.byteSize());
                checkFree(newAddress, host.byteSize(), this, "device slot " + number + " moved");
                install(newAddress);
                guestAddress = newAddress;
            }
        }

        @Override
        public void close() {
            synchronized (MemorySlots.this) {
                if (closed) {
                    return;
                }
                closed = true;
                if (!vmOpen) {
                    return;
                }
                // the number is free again only once KVM has let go of the slot
                vm.removeUserMemoryRegion(number);
                devices.remove(this);
                used.clear(number);
            }
        }

        @Override
        public String toString() {
            return range() + (readOnly ? " read-only" : "");
        }
    }
}
