package dev.kindling.devices.virtio;

import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.memory.GuestMemory;
import dev.kindling.sys.EventFd;
import java.util.List;
import java.util.concurrent.ThreadFactory;

/** What an activated {@link VirtioDevice} gets from its transport. */
public interface VirtioContext {
    GuestMemory memory();

    /** The features the driver accepted. */
    long features();

    /** The device's queues, in index order; a queue the driver did not enable is not {@code ready()}. */
    List<Virtqueue> queues();

    /**
     * Signalled when the driver notifies queue {@code index} (an ioeventfd, so the guest's write does not
     * exit). Non-blocking: read it to clear it.
     */
    EventFd queueNotifier(int index);

    /**
     * Used buffers were added to queue {@code index}: interrupts the driver unless the queue's
     * notification suppression (flags or used_event) says it does not want one.
     */
    void signalUsed(int index);

    /** The configuration space changed: generation and a configuration interrupt. */
    void signalConfigChange();

    /**
     * The device cannot go on (the driver broke a queue, the backend failed): sets DEVICE_NEEDS_RESET
     * and interrupts the driver. The device stops serving until it is reset.
     */
    void needsReset(String why);

    /** Makes the device's daemon threads, named after the machine and the device. */
    ThreadFactory threads();

    /**
     * The device's backend failed in a way the driver cannot repair (an output stream that threw): the
     * machine logs it and keeps it for the host program. Unlike {@link #needsReset} the device goes on.
     * Without a machine to tell, it is logged.
     */
    default void reportFatal(String what, Throwable cause) {
        System.getLogger(VirtioContext.class.getName()).log(System.Logger.Level.ERROR, what, cause);
    }
}
