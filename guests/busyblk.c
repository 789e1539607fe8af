/*
 * busyblk: keeps the virtio-blk disk on virtio-mmio transport 0 busy, for a
 * host that closes the VM in the middle of it. Request k writes sector k
 * (k = 0, 1, ...) with a header of three words (k, ~k, BUSYBLK_MAGIC) and
 * zeros after it; once its used element is back with status OK the guest
 * reports k with outl to 0x6a8, so the host knows what was acknowledged.
 * Polled, no interrupts. At the end of the disk it reports 0xffffffff on
 * 0x6a8 and exits; a failed set-up or request is reported with outl to 0x6ac
 * (1 probe, 2 negotiation, 3 queue, 4 request: then the request's k on 0x6a8)
 * and ends the guest.
 */
#include "rt.h"
#include "virtio.h"

#define PORT_ACK        0x6a8
#define PORT_FAIL       0x6ac
#define BUSYBLK_MAGIC   0x6b646c62u     /* "bldk" */
#define WAIT            (1ull << 33)    /* TSC cycles: only a broken device takes this long */

static struct virtio_dev dev;
static struct virtq vq;
static uint32_t sector_buf[VIRTIO_BLK_SECTOR / 4] __attribute__((aligned(512)));

static NORETURN void fail(uint32_t why)
{
    outl(PORT_FAIL, why);
    exit();
}

void guest_main(uint32_t start_info)
{
    static const uint32_t wanted[2] = { 0, 0 };
    void *const bufs[1] = { sector_buf };
    (void)start_info;

    if (virtio_probe(&dev, VIRTIO_MMIO_BASE(0)) != 0 || dev.device_id != 2)
        fail(1);
    uint32_t s = virtio_negotiate(&dev, wanted);
    if (!(s & VIRTIO_STATUS_FEATURES_OK))
        fail(2);
    if (virtq_setup(&dev, &vq, 0) == 0)
        fail(3);
    vq.avail.flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    virtio_write(&dev, VIRTIO_MMIO_STATUS, s | VIRTIO_STATUS_DRIVER_OK);

    uint32_t capacity = virtio_read(&dev, VIRTIO_MMIO_CONFIG);     /* low word of the sector count */
    for (uint32_t k = 0; k < capacity; k++) {
        sector_buf[0] = k;
        sector_buf[1] = ~k;
        sector_buf[2] = BUSYBLK_MAGIC;
        if (virtio_blk_rw(&dev, &vq, VIRTIO_BLK_T_OUT, k, bufs, 1, VIRTIO_BLK_SECTOR, WAIT) != VIRTIO_BLK_S_OK) {
            outl(PORT_ACK, k);
            fail(4);
        }
        outl(PORT_ACK, k);
    }
    outl(PORT_ACK, 0xffffffffu);
}
