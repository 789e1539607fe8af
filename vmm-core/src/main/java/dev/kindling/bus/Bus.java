package dev.kindling.bus;

import dev.kindling.device.Device;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * An address space of device ranges (the PIO bus or the MMIO bus). Registration rejects overlaps;
 * lookup is a binary search over a sorted snapshot, so vCPU threads dispatch without locking while
 * devices are added or removed.
 */
public final class Bus {
    private final String name;
    private volatile BusRange[] ranges = new BusRange[0];

    public Bus(String name) {
        this.name = name;
    }

    public String name() {
        return name;
    }

    /** Adds {@code device} at {@code [base, base + length)}; fails if any byte is already taken. */
    public synchronized BusRange register(long base, long length, Device device) {
        BusRange added = new BusRange(base, length, device);
        for (BusRange r : ranges) {
            if (added.base() < r.end() && r.base() < added.end()) {
                throw new IllegalArgumentException(name + " bus: " + added + " overlaps " + r);
            }
        }
        BusRange[] next = Arrays.copyOf(ranges, ranges.length + 1);
        next[ranges.length] = added;
        Arrays.sort(next, Comparator.comparingLong(BusRange::base));
        ranges = next;
        return added;
    }

    /** Removes the range starting at {@code base}; true if there was one. */
    public synchronized boolean unregister(long base) {
        List<BusRange> next = new ArrayList<>(List.of(ranges));
        boolean removed = next.removeIf(r -> r.base() == base);
        ranges = next.toArray(BusRange[]::new);
        return removed;
    }

    /** The range holding {@code address}, or null. */
    public BusRange find(long address) {
        BusRange[] rs = ranges;
        int lo = 0, hi = rs.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            BusRange r = rs[mid];
            if (address < r.base()) {
                hi = mid - 1;
            } else if (address - r.base() >= r.length()) {
                lo = mid + 1;
            } else {
                return r;
            }
        }
        return null;
    }

    /**
     * Reads {@code size} bytes at {@code address} from the device there. Nothing there reads as all
     * ones, as on a real bus.
     */
    public long read(long address, int size) {
        BusRange r = find(address);
        return r == null ? Device.ones(size) : r.device().read(address - r.base(), size);
    }

    /** Writes to the device at {@code address}; false if nothing is there (the write is dropped). */
    public boolean write(long address, int size, long value) {
        BusRange r = find(address);
        if (r == null) {
            return false;
        }
        r.device().write(address - r.base(), size, value);
        return true;
    }

    /** Every range, sorted by address: what the guest can see on this bus. */
    public List<BusRange> ranges() {
        return List.of(ranges);
    }
}
