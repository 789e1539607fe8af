package dev.kindling.machine;

import dev.kindling.bus.Bus;
import dev.kindling.bus.BusRange;
import dev.kindling.device.Device;
import java.lang.System.Logger.Level;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * What a vCPU does with a port or MMIO exit, on any hypervisor: finds the device on the bus and calls
 * it. Nothing there: reads see all ones, writes are dropped, or, for MMIO on a strict machine, the
 * machine stops with {@link StopReason.BadAccess}. A device that throws must not take the guest down:
 * its read completes with all ones (as a read of nothing does; the guest would otherwise see whatever
 * the previous exit left behind) and its write is dropped; each failing device is logged once, so a
 * guest repeating the access cannot flood the log. One dispatcher serves all vCPUs of a machine.
 */
public final class ExitDispatch {
    private static final System.Logger LOG = System.getLogger(ExitDispatch.class.getName());

    /** A port I/O exit: {@code count} accesses of {@code size} bytes ({@code count > 1} for rep ins/outs). */
    public interface PortAccess {
        int port();

        int size();

        int count();

        boolean isIn();

        /** The {@code i}-th value an OUT writes, zero-extended. */
        long value(int i);

        /** Supplies the {@code i}-th value an IN reads (its low {@code size} bytes). */
        void setValue(int i, long value);
    }

    /** An MMIO exit: a {@code len}-byte access at {@code address}. */
    public interface MmioAccess {
        long address();

        int len();

        boolean isWrite();

        /** The value a write stores, little-endian in its low {@code len} bytes. */
        long data();

        /** Supplies the value a read returns (its low {@code len} bytes). */
        void complete(long value);
    }

    private final Bus pio;
    private final Bus mmio;
    private final boolean strictMmio;
    private final Set<Object> failed = ConcurrentHashMap.newKeySet();

    public ExitDispatch(Bus pio, Bus mmio, boolean strictMmio) {
        this.pio = Objects.requireNonNull(pio, "pio");
        this.mmio = Objects.requireNonNull(mmio, "mmio");
        this.strictMmio = strictMmio;
    }

    public Bus pio() {
        return pio;
    }

    public Bus mmio() {
        return mmio;
    }

    public boolean strictMmio() {
        return strictMmio;
    }

    /** True if this dispatcher sends to these buses with this strictness (so a platform may share it). */
    public boolean serves(Bus pio, Bus mmio, boolean strictMmio) {
        return this.pio == pio && this.mmio == mmio && this.strictMmio == strictMmio;
    }

    /** Handles a port exit; unclaimed ports read all ones and ignore writes. */
    public void port(PortAccess io) {
        int size = io.size();
        int count = io.count();
        BusRange r = pio.find(io.port());
        if (r == null) {
            if (io.isIn()) {
                for (int i = 0; i < count; i++) {
                    io.setValue(i, Device.ones(size));
                }
            }
            return;
        }
        long offset = io.port() - r.base();
        Device d = r.device();
        if (io.isIn()) {
            for (int i = 0; i < count; i++) {
                io.setValue(i, read(d, offset, size));
            }
        } else {
            for (int i = 0; i < count; i++) {
                write(d, offset, size, io.value(i));
            }
        }
    }

    /**
     * Handles an MMIO exit of vCPU {@code vcpu}. Returns null when the access is done, or why the
     * machine must stop: a strict machine's access to an address no device claims.
     */
    public StopReason mmio(int vcpu, MmioAccess m) {
        BusRange r = mmio.find(m.address());
        if (r == null) {
            if (!m.isWrite()) {
                m.complete(Device.ones(m.len()));
            }
            return strictMmio ? new StopReason.BadAccess(vcpu, m.address(), m.isWrite()) : null;
        }
        Device d = r.device();
        long offset = m.address() - r.base();
        if (m.isWrite()) {
            write(d, offset, m.len(), m.data());
        } else {
            m.complete(read(d, offset, m.len()));
        }
        return null;
    }

    private long read(Device d, long offset, int size) {
        try {
            return d.read(offset, size);
        } catch (RuntimeException e) {
            failed(d, e);
            return Device.ones(size);
        }
    }

    private void write(Device d, long offset, int size, long value) {
        try {
            d.write(offset, size, value);
        } catch (RuntimeException e) {
            failed(d, e);
        }
    }

    /**
     * Runs a callback the hypervisor's exits reach besides the buses (an interrupt controller's end of
     * interrupt): its failure is logged once per {@code source}, as a device's is, and the guest carries on.
     */
    public void guarded(Object source, Runnable action) {
        try {
            action.run();
        } catch (RuntimeException e) {
            failed(source, e);
        }
    }

    /** Logs {@code source}'s failure, once per source and machine. */
    public void failed(Object source, RuntimeException e) {
        if (failed.add(source)) {
            LOG.log(Level.WARNING, "device " + (source instanceof Device d ? d.name() : source)
                    + " failed (further failures are not logged)", e);
        }
    }
}
