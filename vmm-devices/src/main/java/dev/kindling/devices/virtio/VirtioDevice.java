package dev.kindling.devices.virtio;

import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;

/**
 * A virtio device model (virtio 1.2 section 5), independent of its transport and of KVM: its type,
 * features, queues and configuration space, and what it does once the driver has set it up. A
 * transport ({@code dev.kindling.devices.virtio.mmio}) negotiates with the driver and calls
 * {@link #activate} on DRIVER_OK and {@link #reset} when the driver writes status 0.
 *
 * <p><b>Snapshots.</b> The transport saves its registers and the queues, then the device's own state
 * ({@link #saveState}, with the device quiesced); on restore it calls {@link #restoreState} on a
 * freshly made device of the same configuration, then {@link #activate} with the restored queues if
 * the driver had set DRIVER_OK. A device must hold no chain it popped across a {@link #quiesce()}
 * (it finishes the request or {@link dev.kindling.devices.virtio.queue.Virtqueue#undoPop gives it
 * back}): the transport refuses to save a queue with chains in flight.
 */
public interface VirtioDevice extends AutoCloseable, Stateful {
    /** The virtio device ID: {@link VirtioIds}. */
    int deviceType();

    /** A short name for threads and logs, such as {@code "blk0"}. */
    String name();

    /**
     * The device-specific feature bits the device offers. The transport adds the generic ones the
     * queue implements ({@link VirtioFeatures#VERSION_1}, {@link VirtioFeatures#RING_EVENT_IDX},
     * {@link VirtioFeatures#RING_INDIRECT_DESC}).
     */
    long features();

    int queueCount();

    /** The largest size queue {@code index} may have, a power of two up to 32768. */
    int queueMaxSize(int index);

    /** Bytes of device configuration space. */
    int configSize();

    /** Reads {@code size} bytes of configuration space at {@code offset} (inside {@link #configSize()}). */
    long readConfig(int offset, int size);

    /** Writes configuration space; read-only fields ignore it. */
    void writeConfig(int offset, int size, long value);

    /**
     * The driver set DRIVER_OK: serve the queues of {@code context} (valid and ready, or not enabled)
     * with the negotiated features. May start threads, made with {@link VirtioContext#threads()}.
     */
    void activate(VirtioContext context);

    /**
     * The driver reset the device, or the machine did: stop serving. Returns once the device's threads
     * have stopped touching guest memory; the transport then resets the queues.
     */
    void reset();

    /** {@code Machine.pause()}: returns once the device's threads are idle, until {@link #resume()}. */
    default void quiesce() {}

    default void resume() {}

    /**
     * The device's state beyond its configuration, with the device quiesced (none by default). A
     * device that cannot be snapshotted throws {@link dev.kindling.snapshot.SnapshotException}.
     */
    @Override
    default void saveState(StateWriter out) {}

    /**
     * Takes back what {@link #saveState} wrote, before the transport activates the device; a value it
     * cannot take throws {@link dev.kindling.snapshot.SnapshotException} ({@code in.bad}).
     */
    @Override
    default void restoreState(StateReader in) {}

    /** Frees what the device holds (backend files, threads): joins its threads before returning. */
    @Override
    void close();
}
