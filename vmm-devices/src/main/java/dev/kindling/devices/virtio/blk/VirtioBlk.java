package dev.kindling.devices.virtio.blk;

import dev.kindling.devices.virtio.VirtioContext;
import dev.kindling.devices.virtio.VirtioDevice;
import dev.kindling.devices.virtio.VirtioFeatures;
import dev.kindling.devices.virtio.VirtioIds;
import dev.kindling.devices.virtio.VirtioWorkers;
import dev.kindling.devices.virtio.blk.BlkRequest.Limits;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;

/**
 * A virtio-blk device (virtio 1.2 section 5.2) backed by a {@link DiskImage}: one request queue
 * served by one I/O thread per device (a {@link BlkServer}), so a slow disk never stalls a vCPU.
 * Offers read, write, flush, get-id, discard and write-zeroes (the last two not on a read-only
 * disk), up to {@link BlkConfig#SEG_MAX} data segments per request and the disk's logical block
 * size; no SIZE_MAX (nothing here limits one segment's size).
 *
 * <p>Without VIRTIO_BLK_F_FLUSH negotiated the device writes through: every write is made durable
 * before it completes, as the specification asks of a device whose driver cannot flush.
 */
public final class VirtioBlk implements VirtioDevice {
    public static final int QUEUE_SIZE = 256;
    /** How long a stop or pause waits for the request in flight: only a hung backend takes longer. */
    private static final Duration REQUEST_WAIT = Duration.ofSeconds(60);
    private static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final String name;
    private final DiskImage image;
    private final BlkOptions options;
    private final boolean readOnly;
    private final BlkConfig config;
    private final byte[] configSpace;
    private final long features;
    private final VirtioWorkers workers;

    /**
     * A device named {@code name} (threads and logs, e.g. {@code "blk0"}) on {@code image}, which it
     * owns and closes. Read-only if {@code image} was opened read-only or {@code options} say so.
     */
    public VirtioBlk(String name, DiskImage image, BlkOptions options) {
        this.name = name;
        this.image = image;
        this.options = options;
        this.readOnly = image.readOnly() || options.readOnly();
        this.config = BlkConfig.of(image.sectors(), image.logicalBlockSize());
        this.configSpace = config.encode();
        long f = VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX | VirtioFeatures.RING_INDIRECT_DESC
                | bit(BlkAbi.F_SEG_MAX) | bit(BlkAbi.F_BLK_SIZE) | bit(BlkAbi.F_FLUSH);
        this.features = readOnly ? f | bit(BlkAbi.F_RO) : f | bit(BlkAbi.F_DISCARD) | bit(BlkAbi.F_WRITE_ZEROES);
        this.workers = new VirtioWorkers(name, REQUEST_WAIT);
    }

    /** Opens {@code path} as {@link DiskImage#open} does (read-only per {@code options}) and makes the device. */
    public static VirtioBlk open(String name, Path path, BlkOptions options) throws IOException {
        return new VirtioBlk(name, DiskImage.open(path, options.readOnly()), options);
    }

    private static long bit(int n) {
        return 1L << n;
    }

    @Override
    public int deviceType() {
        return VirtioIds.BLOCK;
    }

    @Override
    public String name() {
        return name;
    }

    public DiskImage image() {
        return image;
    }

    public BlkConfig config() {
        return config;
    }

    public boolean readOnly() {
        return readOnly;
    }

    @Override
    public long features() {
        return features;
    }

    @Override
    public int queueCount() {
        return 1;
    }

    @Override
    public int queueMaxSize(int index) {
        return QUEUE_SIZE;
    }

    @Override
    public int configSize() {
        return configSpace.length;
    }

    @Override
    public long readConfig(int offset, int size) {
        long value = 0;
        for (int i = size - 1; i >= 0; i--) {
            int at = offset + i;
            value = (value << 8) | (at >= 0 && at < configSpace.length ? configSpace[at] & 0xff : 0);
        }
        return value;
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        // every field this device offers is read-only (no CONFIG_WCE)
    }

    @Override
    public void activate(VirtioContext context) {
        long negotiated = context.features();
        Limits limits = Limits.of(config, readOnly, negotiated);
        boolean writeThrough = (negotiated & bit(BlkAbi.F_FLUSH)) == 0;
        workers.activate(context, a -> a.start("io", List.of(context.queueNotifier(0)),
                w -> new BlkServer(name, w, context, image, limits, options.id(), writeThrough)));
    }

    @Override
    public void reset() {
        workers.reset();
    }

    /**
     * The configuration space the driver read (capacity, block size, limits), so that a restore on
     * another disk is refused rather than the guest's disk changing size under it. The disk's
     * content is the caller's to carry (the image file); no request is in flight once quiesced.
     */
    @Override
    public void saveState(StateWriter out) {
        out.putBytes(configSpace);
    }

    @Override
    public void restoreState(StateReader in) {
        byte[] saved = in.getBytes();
        if (!Arrays.equals(saved, configSpace)) {
            String was = saved.length >= 8 ? MemorySegment.ofArray(saved).get(LE_LONG, 0) + " sectors" : saved.length + " bytes of configuration";
            throw new SnapshotException(name + ": the disk " + image.path() + " (" + config.capacity() + " sectors of "
                    + config.blkSize() + " bytes) is not the snapshot's (" + was + ")");
        }
    }

    @Override
    public void quiesce() {
        workers.quiesce();
    }

    @Override
    public void resume() {
        workers.resume();
    }

    /** Stops the I/O thread after the request in flight (what was acknowledged is in the image) and closes the image. */
    @Override
    public void close() {
        try {
            workers.close();
        } finally {
            image.close(); // idempotent
        }
    }

    @Override
    public String toString() {
        return "VirtioBlk[" + name + ", " + image + "]";
    }
}
