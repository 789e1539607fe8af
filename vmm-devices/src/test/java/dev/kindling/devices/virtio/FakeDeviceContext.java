package dev.kindling.devices.virtio;

import dev.kindling.bus.AddressSpace;
import dev.kindling.device.DeviceContext;
import dev.kindling.devices.legacy.RecordingLine;
import dev.kindling.device.IoEvent;
import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.memory.MemorySlot;
import dev.kindling.testing.FakeIoEvent;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadFactory;

/**
 * A machine for one device, without KVM: RAM of anonymous memory, a counting IRQ line, ioeventfds
 * that are real eventfds (nothing signals them but the test, as KVM would), recorded threads and
 * fatal reports.
 */
public final class FakeDeviceContext implements DeviceContext, AutoCloseable {
    public static final long RAM_BASE = 0;
    public static final long RAM_SIZE = 16L << 20;

    public record Fatal(String what, Throwable cause) {}

    private final GuestMemory memory;
    private final boolean ownsMemory;
    private final RecordingLine irq = new RecordingLine(5);
    private final RecordingThreads threads = new RecordingThreads("fake-vm-virtio0");
    private final List<FakeIoEvent> ioEvents = new CopyOnWriteArrayList<>();
    private final List<Fatal> fatals = new CopyOnWriteArrayList<>();
    private volatile boolean ioEventsFail;

    public FakeDeviceContext() {
        this.memory = new GuestMemory(List.of(MemoryRegion.anonymous(RAM_BASE, RAM_SIZE)));
        this.ownsMemory = true;
    }

    /**
     * A machine on {@code memory} of another context, which keeps it (close() leaves it open): the
     * machine restored from a snapshot of the other, whose memory content it starts from.
     */
    public FakeDeviceContext(FakeDeviceContext sharingMemoryOf) {
        this.memory = sharingMemoryOf.memory;
        this.ownsMemory = false;
    }

    @Override
    public String name() {
        return "virtio0";
    }

    @Override
    public GuestMemory memory() {
        return memory;
    }

    @Override
    public IrqLine irq() {
        return irq;
    }

    public RecordingLine recordingIrq() {
        return irq;
    }

    @Override
    public InterruptService interrupts() {
        throw new UnsupportedOperationException("a virtio-mmio transport uses its own line only");
    }

    /** From now on ioEvent() throws, as on a platform without ioeventfds. */
    public void failIoEvents() {
        ioEventsFail = true;
    }

    @Override
    public IoEvent ioEvent(AddressSpace space, long address, int length, OptionalLong datamatch) {
        if (ioEventsFail) {
            throw new UnsupportedOperationException("no ioeventfds here");
        }
        FakeIoEvent r = new FakeIoEvent(space, address, length, datamatch);
        ioEvents.add(r);
        return r;
    }

    public List<FakeIoEvent> ioEvents() {
        return List.copyOf(ioEvents);
    }

    @Override
    public MemorySlot mapMemory(long guestAddress, MemorySegment host, boolean readOnly) {
        throw new UnsupportedOperationException("no device memory here");
    }

    @Override
    public ThreadFactory threads() {
        return threads;
    }

    public RecordingThreads recordingThreads() {
        return threads;
    }

    @Override
    public void reportFatal(String what, Throwable cause) {
        fatals.add(new Fatal(what, cause));
    }

    public List<Fatal> fatals() {
        return List.copyOf(fatals);
    }

    @Override
    public void close() {
        if (ownsMemory) {
            memory.close();
        }
    }
}
