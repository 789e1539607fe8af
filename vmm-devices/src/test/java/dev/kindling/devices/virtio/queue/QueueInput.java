package dev.kindling.devices.virtio.queue;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import dev.kindling.devices.virtio.VirtioFeatures;

/**
 * Turns a coverage-guided fuzzer's bytes into what a hostile driver wrote on {@link ChainFuzzing}'s
 * memory: queue size and features, descriptors (addresses aimed at RAM and its edges, or any 64
 * bits), indirect tables, heads and the available index. Reusable by device fuzz targets: decode,
 * then serve the queue with the device's parser.
 */
// javac's exports lint misfires on Jazzer's types seen from the class path
@SuppressWarnings("exports")
public final class QueueInput {
    private static final long[] EDGES = {ChainFuzzing.A, ChainFuzzing.B, ChainFuzzing.B + ChainFuzzing.B_SIZE,
        ChainFuzzing.C, ChainFuzzing.C + ChainFuzzing.C_SIZE};

    private QueueInput() {}

    /** The queue size the input asks for (a power of two up to 256; read first). */
    public static int size(FuzzedDataProvider data) {
        return 1 << data.consumeInt(0, 8);
    }

    /** RING_INDIRECT_DESC and RING_EVENT_IDX as the input says (read second). */
    public static long features(FuzzedDataProvider data) {
        return (data.consumeBoolean() ? VirtioFeatures.RING_INDIRECT_DESC : 0)
                | (data.consumeBoolean() ? VirtioFeatures.RING_EVENT_IDX : 0);
    }

    /** An address: in region A, near a region edge, or any 64 bits. */
    public static long address(FuzzedDataProvider data) {
        return switch (data.consumeInt(0, 3)) {
            case 0 -> ChainFuzzing.A + 0x4_0000 + data.consumeInt(0, 0x3_ffff);
            case 1 -> EDGES[data.consumeInt(0, EDGES.length - 1)] + data.consumeInt(-64, 64);
            case 2 -> ChainFuzzing.A + data.consumeInt(0, (int) (ChainFuzzing.C + ChainFuzzing.C_SIZE - ChainFuzzing.A));
            default -> data.consumeLong();
        };
    }

    /**
     * Writes descriptors, indirect tables and available entries until the input runs out, the way
     * {@code driver}'s queue of {@code size} entries will read them.
     */
    public static void write(FuzzedDataProvider data, VirtqueueDriver driver) {
        int size = driver.size();
        for (int steps = 0; steps < 4 * size + 16 && data.remainingBytes() > 0; steps++) {
            switch (data.consumeInt(0, 4)) {
                case 0, 1 -> driver.rawDescriptor(data.consumeInt(0, size - 1), address(data), data.consumeInt(),
                        data.consumeInt(0, 0xffff), data.consumeInt(0, 0xffff));
                case 2 -> {
                    int entries = data.consumeInt(1, 16);
                    long table = driver.allocate(16L * entries);
                    for (int i = 0; i < entries; i++) {
                        driver.writeDescriptor(table, i, address(data), data.consumeInt(),
                                data.consumeInt(0, 0xffff), data.consumeInt(0, 0xffff));
                    }
                    driver.rawDescriptor(data.consumeInt(0, size - 1), table, 16 * entries + data.consumeInt(-17, 17) * (data.consumeBoolean() ? 1 : 0),
                            Virtqueue.DESC_F_INDIRECT | data.consumeInt(0, 0xffff), data.consumeInt(0, 0xffff));
                }
                case 3 -> driver.publishHead(data.consumeBoolean() ? data.consumeInt(0, size - 1) : data.consumeInt(0, 0xffff));
                default -> {
                    driver.setAvailIdx(driver.availIdx() + data.consumeInt(-2, size + 2));
                    driver.setUsedEvent(data.consumeInt(0, 0xffff));
                    driver.setAvailFlags(data.consumeInt(0, 1));
                }
            }
        }
    }
}
