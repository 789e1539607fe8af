#include "rt.h"
#include "virtio.h"

/* Resets complete at once in practice; this only bounds a device that never reads back 0. */
#define RESET_POLLS 1000

int virtio_probe(struct virtio_dev *d, uintptr_t base)
{
    d->base = base;
    d->device_id = 0;
    if (virtio_read(d, VIRTIO_MMIO_MAGIC) != VIRTIO_MMIO_MAGIC_VALUE)
        return -1;
    if (virtio_read(d, VIRTIO_MMIO_VERSION) != 2)
        return -2;
    d->device_id = virtio_read(d, VIRTIO_MMIO_DEVICE_ID);
    return d->device_id == 0 ? -3 : 0;
}

uint32_t virtio_reset(struct virtio_dev *d)
{
    uint32_t s = 0;

    virtio_write(d, VIRTIO_MMIO_STATUS, 0);
    for (int i = 0; i < RESET_POLLS; i++) {
        s = virtio_read(d, VIRTIO_MMIO_STATUS);
        if (s == 0)
            break;
    }
    return s;
}

uint32_t virtio_negotiate(struct virtio_dev *d, const uint32_t wanted[2])
{
    virtio_reset(d);
    virtio_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    for (uint32_t w = 0; w < 2; w++) {
        virtio_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, w);
        d->features[w] = virtio_read(d, VIRTIO_MMIO_DEVICE_FEATURES);
        d->accepted[w] = d->features[w] & wanted[w];
    }
    d->accepted[VIRTIO_F_VERSION_1 / 32] |= d->features[VIRTIO_F_VERSION_1 / 32] & (1u << (VIRTIO_F_VERSION_1 % 32));
    for (uint32_t w = 0; w < 2; w++) {
        virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, w);
        virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, d->accepted[w]);
    }
    virtio_write(d, VIRTIO_MMIO_STATUS,
                 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    return virtio_read(d, VIRTIO_MMIO_STATUS);
}

uint32_t virtq_setup(struct virtio_dev *d, struct virtq *q, unsigned index)
{
    uint8_t *p = (uint8_t *)q;

    for (unsigned i = 0; i < sizeof(*q); i++)
        p[i] = 0;
    virtio_write(d, VIRTIO_MMIO_QUEUE_SEL, index);
    if (virtio_read(d, VIRTIO_MMIO_QUEUE_READY) != 0)
        return 0;
    uint32_t max = virtio_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
    if (max < VIRTQ_MAX)
        return 0;
    virtio_write(d, VIRTIO_MMIO_QUEUE_NUM, VIRTQ_MAX);
    virtio_write(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)(uintptr_t)q->desc);
    virtio_write(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
    virtio_write(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)(uintptr_t)&q->avail);
    virtio_write(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0);
    virtio_write(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)(uintptr_t)&q->used);
    virtio_write(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0);
    virtio_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
    return max;
}

void virtq_submit(struct virtio_dev *d, struct virtq *q, unsigned index, uint16_t head)
{
    q->avail.ring[q->next_avail % VIRTQ_MAX] = head;
    virtio_barrier();
    q->next_avail++;
    *(volatile uint16_t *)&q->avail.idx = q->next_avail;
    virtio_barrier();
    virtio_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, index);
}

int virtq_wait_used(struct virtio_dev *d, struct virtq *q, struct virtq_used_elem *elem, uint64_t tsc_cycles)
{
    uint64_t deadline = rdtsc() + tsc_cycles;

    for (unsigned polls = 0;; polls++) {
        if (*(volatile uint16_t *)&q->used.idx != q->last_used) {
            virtio_barrier();
            *elem = q->used.ring[q->last_used % VIRTQ_MAX];
            q->last_used++;
            return 1;
        }
        /* the status register is an exit: look at it now and then */
        if (polls % 64 == 63 && (virtio_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET))
            return -1;
        if (rdtsc() > deadline)
            return (virtio_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET) ? -1 : 0;
        __asm__ volatile("pause");
    }
}

uint32_t virtio_blk_rw(struct virtio_dev *d, struct virtq *q, uint32_t type, uint64_t sector,
                       void *const *bufs, unsigned nbuf, uint32_t len, uint64_t tsc_cycles)
{
    static struct virtio_blk_req hdr;
    static volatile uint8_t status;
    uint16_t data_flags = type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0;
    struct virtq_used_elem e;

    hdr = (struct virtio_blk_req){ .type = type, .reserved = 0, .sector = sector };
    status = 0xee;
    virtq_desc_set(q, 0, (uint32_t)(uintptr_t)&hdr, sizeof(hdr), VIRTQ_DESC_F_NEXT, 1);
    for (unsigned k = 0; k < nbuf; k++)
        virtq_desc_set(q, 1 + k, (uint32_t)(uintptr_t)bufs[k], len, data_flags | VIRTQ_DESC_F_NEXT, 2 + k);
    virtq_desc_set(q, 1 + nbuf, (uint32_t)(uintptr_t)&status, 1, VIRTQ_DESC_F_WRITE, 0);
    virtq_submit(d, q, 0, 0);
    int r = virtq_wait_used(d, q, &e, tsc_cycles);
    if (r != 1)
        return 0x100 + (uint32_t)(r & 0xff);
    if (e.id != 0)
        return 0x200;
    return status;
}
