package dev.kindling.devices.virtio.net;

import dev.kindling.sys.Fd;
import java.lang.foreign.MemorySegment;

/**
 * Where a {@link VirtioNet}'s Ethernet frames go and come from. Used by the device thread only, apart
 * from {@link #close()}. Frames are whole Ethernet frames without FCS; with {@link #vnetHeader()} each
 * starts with a {@code struct virtio_net_hdr_v1} ({@link VirtioNet#VNET_HEADER_SIZE} bytes) both ways.
 */
public interface NetBackend extends AutoCloseable {
    /** Readable (level-triggered) while {@link #receive} may have a frame. */
    Fd readable();

    /**
     * Whether frames carry the vnet header, so that the device can offer the guest checksum and
     * segmentation offloads: a tap opened with IFF_VNET_HDR does. Without it, the device offers none.
     */
    boolean vnetHeader();

    /**
     * The offloads the guest accepted for frames it receives ({@link VirtioNet}'s GUEST_CSUM,
     * GUEST_TSO4, GUEST_TSO6, GUEST_ECN feature bits): the backend may hand it frames that
     * use them (TUNSETOFFLOAD). Only called with {@link #vnetHeader()}.
     */
    default void setGuestOffloads(long guestFeatures) {}

    /**
     * Copies the next frame into {@code into} and returns its length, or 0 if none is ready (it does
     * not block). A frame longer than {@code into} is dropped (and the next one tried).
     */
    int receive(MemorySegment into);

    /** Sends one frame; false if the backend could not take it now (the frame is dropped, as a NIC would). */
    boolean send(MemorySegment frame);

    /** Frees the backend's descriptors, processes and threads. */
    @Override
    void close();
}
