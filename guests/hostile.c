/*
 * hostile: a virtio-blk driver on virtio-mmio transport 0 (0xd0000000, IRQ 5)
 * that first drives the device as a driver would, then sends malformed
 * descriptor chains, each followed by a valid request that must still work.
 * Every step is reported as a (key, value) pair: outl key to 0x6a0, then
 * outl value to 0x6a4. The host gives it 64 MiB of RAM and a disk of at least
 * 512 sectors whose byte i of sector s is (s * 31 + i) & 0xff.
 */
#include "rt.h"
#include "virtio.h"

#define PORT_KEY    0x6a0
#define PORT_VALUE  0x6a4
#define RAM_END     0x4000000u      /* 64 MiB */
#define IRQ_VECTOR  0x35

/* Keys of the driver steps. */
enum {
    K_MAGIC = 1, K_VERSION, K_DEVICE_ID, K_FEATURES_LO, K_FEATURES_HI, K_ACCEPTED_LO, K_ACCEPTED_HI,
    K_FEATURES_OK, K_CAPACITY_LO, K_CAPACITY_HI, K_GENERATION, K_QUEUE_MAX, K_DRIVER_OK,
    K_WRITE, K_WRITE_ISR, K_READ_BACK, K_READ_BACK_DATA, K_READ_INITIAL, K_READ_INITIAL_DATA,
    K_FLUSH, K_IRQ_WRITE, K_IRQ_USED, K_IRQ_READ_DATA,
    K_DONE = 0xff,
};

/* A hostile case c reports under 0x100 + 16 * c + field. */
#define CASE_KEY(c, f) (0x100u + 16u * (c) + (f))
enum {
    F_WAIT,         /* 1 used element, 0 nothing within the wait, 0xff NEEDS_RESET */
    F_ID, F_LEN,    /* the used element */
    F_STATUS,       /* the request's status byte; 0xee if the device did not write it */
    F_DEVSTATUS,    /* the Status register afterwards */
    F_RESET,        /* the driver reset and set the device up again: its FEATURES_OK read-back */
    F_CHECK,        /* memory the device must not have written is intact: 1 */
    F_NEXT_WRITE, F_NEXT_READ, F_NEXT_DATA, /* the valid write and read-back after it */
};

enum {
    C_ADDR_HIGH = 1, C_ADDR_4G, C_ADDR_WRAP, C_LEN_PAST_RAM, C_READ_STRADDLES_RAM, C_WRITE_OUTSIDE_RAM,
    C_CHAIN_TOO_LONG, C_LOOP, C_NESTED_INDIRECT, C_HEAD_PAST_SIZE, C_HEADER_WRITE_ONLY,
    C_STATUS_READ_ONLY, C_READ_INTO_READ_ONLY, C_AVAIL_JUMP,
};

#define WAIT_VALID   (1ull << 33)   /* seconds: only a broken device takes this long */
#define WAIT_HOSTILE (1ull << 33)   /* as long: an I/O thread on a loaded host may take a while to mark NEEDS_RESET */
#define CANARY       0x5a

static struct virtio_dev dev;
static struct virtq vq;
static uint32_t wanted[2] = { (1u << VIRTIO_F_INDIRECT_DESC) | (1u << VIRTIO_F_EVENT_IDX), 0 };
static uint8_t buf[4][VIRTIO_BLK_SECTOR] __attribute__((aligned(512)));
static uint8_t scratch[16][VIRTIO_BLK_SECTOR] __attribute__((aligned(512)));
static struct virtq_desc itable[24] __attribute__((aligned(16)));
static struct virtq_desc itable2[4] __attribute__((aligned(16)));
static struct virtio_blk_req hreq;
static volatile uint8_t hstatus;
static volatile uint32_t used_irqs, irq_used_idx;

static void report(uint32_t key, uint32_t value)
{
    outl(PORT_KEY, key);
    outl(PORT_VALUE, value);
}

static uint8_t initial(uint32_t sector, uint32_t i) { return (uint8_t)(sector * 31 + i); }
static uint8_t written(uint32_t sector, uint32_t i, uint32_t tag) { return (uint8_t)(sector * 7 + i * 3 + tag); }

static void fill(uint8_t *p, uint32_t sector, uint32_t tag)
{
    for (uint32_t i = 0; i < VIRTIO_BLK_SECTOR; i++)
        p[i] = written(sector, i, tag);
}

static int holds(const uint8_t *p, uint32_t sector, uint32_t tag)
{
    for (uint32_t i = 0; i < VIRTIO_BLK_SECTOR; i++)
        if (p[i] != (tag ? written(sector, i, tag) : initial(sector, i)))
            return 0;
    return 1;
}

static void set_bytes(volatile uint8_t *p, uint32_t n, uint8_t v)
{
    for (uint32_t i = 0; i < n; i++)
        p[i] = v;
}

static int all_bytes(const volatile uint8_t *p, uint32_t n, uint8_t v)
{
    for (uint32_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

/* No interrupt for the next request (polled): NO_INTERRUPT, or used_event far from the used idx. */
static void interrupts_off(void)
{
    if (virtio_accepted(&dev, VIRTIO_F_EVENT_IDX))
        *(volatile uint16_t *)&vq.avail.used_event = (uint16_t)(vq.last_used + 0x8000);
    else
        *(volatile uint16_t *)&vq.avail.flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
}

static void interrupts_on(void)
{
    if (virtio_accepted(&dev, VIRTIO_F_EVENT_IDX))
        *(volatile uint16_t *)&vq.avail.used_event = vq.last_used;
    else
        *(volatile uint16_t *)&vq.avail.flags = 0;
}

void on_irq(void);
ISR_ENTRY(irq_entry, on_irq);

void on_irq(void)
{
    uint32_t isr = virtio_read(&dev, VIRTIO_MMIO_INTERRUPT_STATUS);

    virtio_write(&dev, VIRTIO_MMIO_INTERRUPT_ACK, isr);
    if (isr & 1) {
        irq_used_idx = *(volatile uint16_t *)&vq.used.idx;
        used_irqs++;
    }
    lapic_eoi();
}

/* Negotiation, queue 0 and DRIVER_OK; returns the FEATURES_OK read-back (0 if the queue failed). */
static uint32_t setup(void)
{
    uint32_t s = virtio_negotiate(&dev, wanted);
    if (!(s & VIRTIO_STATUS_FEATURES_OK))
        return s;
    if (virtq_setup(&dev, &vq, 0) == 0)
        return 0;
    interrupts_off();
    virtio_write(&dev, VIRTIO_MMIO_STATUS, s | VIRTIO_STATUS_DRIVER_OK);
    return s;
}

static uint32_t rw(uint32_t type, uint32_t sector, unsigned nbuf)
{
    void *bufs[4] = { buf[0], buf[1], buf[2], buf[3] };
    interrupts_off();
    return virtio_blk_rw(&dev, &vq, type, sector, bufs, nbuf, VIRTIO_BLK_SECTOR, WAIT_VALID);
}

/* The driver's part: negotiation, set-up, writes, reads, a flush, one request by interrupt. */
static int drive(void)
{
    int probe = virtio_probe(&dev, VIRTIO_MMIO_BASE(0));
    report(K_MAGIC, virtio_read(&dev, VIRTIO_MMIO_MAGIC));
    report(K_VERSION, virtio_read(&dev, VIRTIO_MMIO_VERSION));
    report(K_DEVICE_ID, virtio_read(&dev, VIRTIO_MMIO_DEVICE_ID));
    if (probe != 0)
        return 0;
    uint32_t s = virtio_negotiate(&dev, wanted);
    report(K_FEATURES_LO, dev.features[0]);
    report(K_FEATURES_HI, dev.features[1]);
    report(K_ACCEPTED_LO, dev.accepted[0]);
    report(K_ACCEPTED_HI, dev.accepted[1]);
    report(K_FEATURES_OK, s);
    if (!(s & VIRTIO_STATUS_FEATURES_OK))
        return 0;
    report(K_GENERATION, virtio_read(&dev, VIRTIO_MMIO_CONFIG_GENERATION));
    report(K_CAPACITY_LO, virtio_read(&dev, VIRTIO_MMIO_CONFIG));
    report(K_CAPACITY_HI, virtio_read(&dev, VIRTIO_MMIO_CONFIG + 4));
    uint32_t max = virtq_setup(&dev, &vq, 0);
    report(K_QUEUE_MAX, max);
    if (max == 0)
        return 0;
    interrupts_off();
    virtio_write(&dev, VIRTIO_MMIO_STATUS, s | VIRTIO_STATUS_DRIVER_OK);
    report(K_DRIVER_OK, virtio_read(&dev, VIRTIO_MMIO_STATUS));

    /* sectors 8 and 9 from two buffers, read back into two others; sector 100 as the host wrote it */
    fill(buf[0], 8, 1);
    fill(buf[1], 9, 1);
    report(K_WRITE, rw(VIRTIO_BLK_T_OUT, 8, 2));
    report(K_WRITE_ISR, virtio_read(&dev, VIRTIO_MMIO_INTERRUPT_STATUS));
    set_bytes(buf[0], sizeof(buf), 0);
    report(K_READ_BACK, rw(VIRTIO_BLK_T_IN, 8, 2));
    report(K_READ_BACK_DATA, holds(buf[0], 8, 1) && holds(buf[1], 9, 1));
    report(K_READ_INITIAL, rw(VIRTIO_BLK_T_IN, 100, 1));
    report(K_READ_INITIAL_DATA, holds(buf[0], 100, 0));
    report(K_FLUSH, rw(VIRTIO_BLK_T_FLUSH, 0, 0));

    /* one write completed by interrupt: IOAPIC pin 5, and the device asked to interrupt */
    idt_init();
    idt_set_handler(IRQ_VECTOR, irq_entry);
    lapic_enable();
    ioapic_route_edge(VIRTIO_MMIO_IRQ(0), IRQ_VECTOR, 0);
    fill(buf[0], 10, 2);
    void *one[1] = { buf[0] };
    /* the line rises again only once earlier interrupts are acknowledged */
    virtio_write(&dev, VIRTIO_MMIO_INTERRUPT_ACK, virtio_read(&dev, VIRTIO_MMIO_INTERRUPT_STATUS));
    interrupts_on();
    used_irqs = 0;
    uint16_t target = (uint16_t)(vq.last_used + 1);
    uint32_t st = virtio_blk_rw(&dev, &vq, VIRTIO_BLK_T_OUT, 10, one, 1, VIRTIO_BLK_SECTOR, WAIT_VALID);
    uint64_t deadline = rdtsc() + WAIT_VALID;
    __asm__ volatile("sti" ::: "memory");
    while (!(used_irqs && irq_used_idx == target) && rdtsc() < deadline)
        __asm__ volatile("pause");
    cpu_cli();
    report(K_IRQ_WRITE, st);
    report(K_IRQ_USED, used_irqs && irq_used_idx == target);
    set_bytes(buf[0], VIRTIO_BLK_SECTOR, 0);
    rw(VIRTIO_BLK_T_IN, 10, 1);
    report(K_IRQ_READ_DATA, holds(buf[0], 10, 2));
    return 1;
}

static void hdesc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    vq.desc[i] = (struct virtq_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

static uint32_t hreq_addr(uint32_t type, uint32_t sector)
{
    hreq = (struct virtio_blk_req){ .type = type, .reserved = 0, .sector = sector };
    return (uint32_t)(uintptr_t)&hreq;
}

#define STATUS_ADDR ((uint32_t)(uintptr_t)&hstatus)
#define RW VIRTQ_DESC_F_WRITE
#define NX VIRTQ_DESC_F_NEXT

/*
 * Builds case c's chain at descriptor 3 (head) onwards and returns the head
 * to put in the avail ring; sets *check to the memory the device must leave
 * alone (filled with CANARY), if any.
 */
static uint16_t build(unsigned c, volatile uint8_t **check, uint32_t *check_len)
{
    uint32_t straddle = RAM_END - 256;
    *check = 0;
    *check_len = 0;
    switch (c) {
    case C_ADDR_HIGH:
        hdesc(3, hreq_addr(VIRTIO_BLK_T_IN, 300), sizeof(hreq), NX, 4);
        hdesc(4, 0xfff00000u, VIRTIO_BLK_SECTOR, RW | NX, 5);
        hdesc(5, STATUS_ADDR, 1, RW, 0);
        return 3;
    case C_ADDR_4G:
        hdesc(3, hreq_addr(VIRTIO_BLK_T_IN, 300), sizeof(hreq), NX, 4);
        hdesc(4, 0x100000000ull, VIRTIO_BLK_SECTOR, RW | NX, 5);
        hdesc(5, STATUS_ADDR, 1, RW, 0);
        return 3;
    case C_ADDR_WRAP:
        hdesc(3, hreq_addr(VIRTIO_BLK_T_IN, 300), sizeof(hreq), NX, 4);
        hdesc(4, 0xfffffffffffffe00ull, 0x400, RW | NX, 5);
        hdesc(5, STATUS_ADDR, 1, RW, 0);
        return 3;
    case C_LEN_PAST_RAM:
        /* starts in RAM, 256 MiB long: the RAM part must stay untouched too */
        *check = (volatile uint8_t *)(uintptr_t)(RAM_END - 4096);
        *check_len = 4096;
        hdesc(3, hreq_addr(VIRTIO_BLK_T_IN, 300), sizeof(hreq), NX, 4);
        hdesc(4, RAM_END - 4096, 0x10000000u, RW | NX, 5);
        hdesc(5, STATUS_ADDR, 1, RW, 0);
        return 3;
    case C_READ_STRADDLES_RAM:
        *check = (volatile uint8_t *)(uintptr_t)straddle;
        *check_len = 256;
        hdesc(3, hreq_addr(VIRTIO_BLK_T_IN, 300), sizeof(hreq), NX, 4);
        hdesc(4, straddle, VIRTIO_BLK_SECTOR, RW | NX, 5);
        hdesc(5, STATUS_ADDR, 1, RW, 0);
        return 3;
    case C_WRITE_OUTSIDE_RAM:
        hdesc(3, hreq_addr(VIRTIO_BLK_T_OUT, 301), sizeof(hreq), NX, 4);
        hdesc(4, 0xfff00000u, VIRTIO_BLK_SECTOR, NX, 5);
        hdesc(5, STATUS_ADDR, 1, RW, 0);
        return 3;
    case C_CHAIN_TOO_LONG:
        /* an indirect table of VIRTQ_MAX + 2 valid descriptors: header, 16 data, status */
        *check = scratch[0];
        *check_len = sizeof(scratch);
        itable[0] = (struct virtq_desc){ hreq_addr(VIRTIO_BLK_T_IN, 302), sizeof(hreq), NX, 1 };
        for (uint16_t k = 1; k <= 16; k++)
            itable[k] = (struct virtq_desc){ (uint32_t)(uintptr_t)scratch[k - 1], VIRTIO_BLK_SECTOR, RW | NX, (uint16_t)(k + 1) };
        itable[17] = (struct virtq_desc){ STATUS_ADDR, 1, RW, 0 };
        hdesc(3, (uint32_t)(uintptr_t)itable, 18 * sizeof(struct virtq_desc), VIRTQ_DESC_F_INDIRECT, 0);
        return 3;
    case C_LOOP:
        *check = scratch[0];
        *check_len = 2 * VIRTIO_BLK_SECTOR;
        hdesc(3, hreq_addr(VIRTIO_BLK_T_IN, 300), sizeof(hreq), NX, 4);
        hdesc(4, (uint32_t)(uintptr_t)scratch[0], VIRTIO_BLK_SECTOR, RW | NX, 5);
        hdesc(5, (uint32_t)(uintptr_t)scratch[1], VIRTIO_BLK_SECTOR, RW | NX, 4);
        return 3;
    case C_NESTED_INDIRECT:
        *check = scratch[0];
        *check_len = VIRTIO_BLK_SECTOR;
        itable2[0] = (struct virtq_desc){ (uint32_t)(uintptr_t)scratch[0], VIRTIO_BLK_SECTOR, RW | NX, 1 };
        itable2[1] = (struct virtq_desc){ STATUS_ADDR, 1, RW, 0 };
        itable[0] = (struct virtq_desc){ hreq_addr(VIRTIO_BLK_T_IN, 300), sizeof(hreq), NX, 1 };
        itable[1] = (struct virtq_desc){ (uint32_t)(uintptr_t)itable2, 2 * sizeof(struct virtq_desc), VIRTQ_DESC_F_INDIRECT, 0 };
        hdesc(3, (uint32_t)(uintptr_t)itable, 2 * sizeof(struct virtq_desc), VIRTQ_DESC_F_INDIRECT, 0);
        return 3;
    case C_HEAD_PAST_SIZE:
        return VIRTQ_MAX + 3;
    case C_HEADER_WRITE_ONLY:
        fill(scratch[0], 303, 0x30);
        hdesc(3, hreq_addr(VIRTIO_BLK_T_OUT, 303), sizeof(hreq), RW | NX, 4);
        hdesc(4, (uint32_t)(uintptr_t)scratch[0], VIRTIO_BLK_SECTOR, NX, 5);
        hdesc(5, STATUS_ADDR, 1, RW, 0);
        return 3;
    case C_STATUS_READ_ONLY:
        fill(scratch[0], 304, 0x31);
        hdesc(3, hreq_addr(VIRTIO_BLK_T_OUT, 304), sizeof(hreq), NX, 4);
        hdesc(4, (uint32_t)(uintptr_t)scratch[0], VIRTIO_BLK_SECTOR, NX, 5);
        hdesc(5, STATUS_ADDR, 1, 0, 0);
        return 3;
    case C_READ_INTO_READ_ONLY:
        *check = scratch[0];
        *check_len = VIRTIO_BLK_SECTOR;
        hdesc(3, hreq_addr(VIRTIO_BLK_T_IN, 305), sizeof(hreq), NX, 4);
        hdesc(4, (uint32_t)(uintptr_t)scratch[0], VIRTIO_BLK_SECTOR, NX, 5);
        hdesc(5, STATUS_ADDR, 1, RW, 0);
        return 3;
    }
    return 0;
}

static void hostile(unsigned c)
{
    volatile uint8_t *check;
    uint32_t check_len;
    struct virtq_used_elem e = { 0xffffffffu, 0xffffffffu };
    int r;

    set_bytes(scratch[0], sizeof(scratch), CANARY);
    set_bytes((volatile uint8_t *)(uintptr_t)(RAM_END - 4096), 4096, CANARY);
    hstatus = 0xee;
    interrupts_off();
    if (c == C_AVAIL_JUMP) {
        /* more new entries than the queue has: the device can only give up on the queue */
        *(volatile uint16_t *)&vq.avail.idx = (uint16_t)(vq.next_avail + VIRTQ_MAX + 1);
        virtio_barrier();
        virtio_write(&dev, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
        check = 0;
        check_len = 0;
    } else {
        uint16_t head = build(c, &check, &check_len);
        virtq_submit(&dev, &vq, 0, head);
    }
    r = virtq_wait_used(&dev, &vq, &e, WAIT_HOSTILE);
    report(CASE_KEY(c, F_WAIT), r == 1 ? 1 : r == 0 ? 0 : 0xff);
    report(CASE_KEY(c, F_ID), e.id);
    report(CASE_KEY(c, F_LEN), e.len);
    report(CASE_KEY(c, F_STATUS), hstatus);
    uint32_t devstatus = virtio_read(&dev, VIRTIO_MMIO_STATUS);
    report(CASE_KEY(c, F_DEVSTATUS), devstatus);
    int intact = check == 0 || all_bytes(check, check_len, CANARY);
    report(CASE_KEY(c, F_CHECK), intact);
    if (devstatus & VIRTIO_STATUS_NEEDS_RESET)
        report(CASE_KEY(c, F_RESET), setup());
    else
        /* the device used or dropped the chain: whatever it left in the used ring is consumed */
        vq.last_used = *(volatile uint16_t *)&vq.used.idx;

    uint32_t sector = 200 + c, tag = 0x40 + c;
    fill(buf[0], sector, tag);
    report(CASE_KEY(c, F_NEXT_WRITE), rw(VIRTIO_BLK_T_OUT, sector, 1));
    set_bytes(buf[0], VIRTIO_BLK_SECTOR, 0);
    report(CASE_KEY(c, F_NEXT_READ), rw(VIRTIO_BLK_T_IN, sector, 1));
    report(CASE_KEY(c, F_NEXT_DATA), holds(buf[0], sector, tag));
}

void guest_main(uint32_t start_info)
{
    (void)start_info;
    if (drive())
        for (unsigned c = C_ADDR_HIGH; c <= C_AVAIL_JUMP; c++)
            hostile(c);
    report(K_DONE, 0);
}
