/*
 * A minimal virtio-mmio (version 2) driver for the test guests: probe,
 * feature negotiation, one split virtqueue per device set up in the guest's
 * own memory, and virtio-blk requests. Polls the used ring; the caller takes
 * interrupts itself if it wants them. 32-bit guests: every guest-physical
 * address the driver uses is below 4 GiB, so the high address words are 0.
 */
#ifndef KINDLING_GUEST_VIRTIO_H
#define KINDLING_GUEST_VIRTIO_H

#include <stdint.h>

/* Microvm's transports: 512 bytes each from 0xd0000000, transport i at IRQ 5 + i. */
#define VIRTIO_MMIO_BASE(i)  (0xd0000000u + (i) * 0x200u)
#define VIRTIO_MMIO_IRQ(i)   (5u + (i))

/* Registers (virtio 1.2 section 4.2.2). */
#define VIRTIO_MMIO_MAGIC               0x000
#define VIRTIO_MMIO_VERSION             0x004
#define VIRTIO_MMIO_DEVICE_ID           0x008
#define VIRTIO_MMIO_VENDOR_ID           0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES     0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES     0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL           0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX       0x034
#define VIRTIO_MMIO_QUEUE_NUM           0x038
#define VIRTIO_MMIO_QUEUE_READY         0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY        0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS    0x060
#define VIRTIO_MMIO_INTERRUPT_ACK       0x064
#define VIRTIO_MMIO_STATUS              0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW      0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH     0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW    0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH   0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW    0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH   0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION   0x0fc
#define VIRTIO_MMIO_CONFIG              0x100

#define VIRTIO_MMIO_MAGIC_VALUE 0x74726976u    /* "virt" */

/* Device status bits (section 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE   0x01
#define VIRTIO_STATUS_DRIVER        0x02
#define VIRTIO_STATUS_DRIVER_OK     0x04
#define VIRTIO_STATUS_FEATURES_OK   0x08
#define VIRTIO_STATUS_NEEDS_RESET   0x40
#define VIRTIO_STATUS_FAILED        0x80

/* Feature bits, as bit numbers: word = bit / 32. */
#define VIRTIO_F_INDIRECT_DESC  28
#define VIRTIO_F_EVENT_IDX      29
#define VIRTIO_F_VERSION_1      32

/* Split virtqueue (section 2.7). */
#define VIRTQ_DESC_F_NEXT       1
#define VIRTQ_DESC_F_WRITE      2
#define VIRTQ_DESC_F_INDIRECT   4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};

/* The size of every queue this driver sets up. */
#define VIRTQ_MAX 16

struct virtq {
    uint16_t next_avail;            /* the driver's avail idx */
    uint16_t last_used;             /* used idx the driver has consumed up to */
    struct virtq_desc desc[VIRTQ_MAX] __attribute__((aligned(16)));
    struct {
        uint16_t flags;
        uint16_t idx;
        uint16_t ring[VIRTQ_MAX];
        uint16_t used_event;
    } avail __attribute__((aligned(2)));
    struct {
        uint16_t flags;
        uint16_t idx;
        struct virtq_used_elem ring[VIRTQ_MAX];
        uint16_t avail_event;
    } used __attribute__((aligned(4)));
};

struct virtio_dev {
    uintptr_t base;
    uint32_t device_id;
    uint32_t features[2];           /* offered by the device */
    uint32_t accepted[2];           /* written back by the driver */
};

static inline uint32_t virtio_read(const struct virtio_dev *d, uint32_t reg) {
    return *(volatile uint32_t *)(d->base + reg);
}
static inline void virtio_write(const struct virtio_dev *d, uint32_t reg, uint32_t v) {
    *(volatile uint32_t *)(d->base + reg) = v;
}
static inline int virtio_accepted(const struct virtio_dev *d, unsigned bit) {
    return (d->accepted[bit / 32] >> (bit % 32)) & 1;
}

/* Compiler barrier: x86 keeps stores in order and MMIO after them. */
#define virtio_barrier() __asm__ volatile("" ::: "memory")

/*
 * Magic, version 2 and a non-zero device id; returns 0, or -1 (bad magic),
 * -2 (version), -3 (no device). Fills d->base and d->device_id.
 */
int virtio_probe(struct virtio_dev *d, uintptr_t base);

/*
 * Reset (waiting, bounded, for status 0), ACKNOWLEDGE | DRIVER, reads both
 * feature words, accepts VERSION_1 plus whichever bits of `wanted` the device
 * offers, sets FEATURES_OK and reads it back. Returns the status read back;
 * negotiation succeeded when it has FEATURES_OK.
 */
uint32_t virtio_negotiate(struct virtio_dev *d, const uint32_t wanted[2]);

/* Writes status 0 and waits (bounded) for the device to read back 0; returns the last value read. */
uint32_t virtio_reset(struct virtio_dev *d);

/*
 * Sets up queue `index` with VIRTQ_MAX entries in `q` (zeroed here) and
 * enables it. Returns QueueNumMax, or 0 if the queue is absent, already
 * ready or smaller than VIRTQ_MAX.
 */
uint32_t virtq_setup(struct virtio_dev *d, struct virtq *q, unsigned index);

/* Puts `head` in the avail ring, publishes the new idx and notifies queue `index`. */
void virtq_submit(struct virtio_dev *d, struct virtq *q, unsigned index, uint16_t head);

/*
 * Waits until the used idx passes q->last_used or the device sets
 * NEEDS_RESET, for at most `tsc_cycles` of the TSC. Returns 1 with *elem
 * filled (and last_used advanced) for a used element, 0 on timeout, -1 for
 * NEEDS_RESET.
 */
int virtq_wait_used(struct virtio_dev *d, struct virtq *q, struct virtq_used_elem *elem, uint64_t tsc_cycles);

/* ---- virtio-blk (section 5.2) ---- */
#define VIRTIO_BLK_T_IN     0
#define VIRTIO_BLK_T_OUT    1
#define VIRTIO_BLK_T_FLUSH  4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_SECTOR   512

struct virtio_blk_req {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

/* Descriptor helper: fills q->desc[i]. */
static inline void virtq_desc_set(struct virtq *q, uint16_t i, uint32_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    q->desc[i] = (struct virtq_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

/*
 * One blk request through descriptors 0 (header), 1..nbuf (data, each
 * `len` bytes from bufs[k]) and nbuf + 1 (status), waiting for it as
 * virtq_wait_used does. Returns the status byte, 0x100 + the wait's result if
 * the device returned nothing, or 0x200 if it returned another head.
 */
uint32_t virtio_blk_rw(struct virtio_dev *d, struct virtq *q, uint32_t type, uint64_t sector,
                       void *const *bufs, unsigned nbuf, uint32_t len, uint64_t tsc_cycles);

#endif
