/* ivshmem: a peer of an ivshmem-doorbell device, as a driver finds and uses it.
 * Finds 1af4:1110 on PCI bus 0 (configuration mechanism 1), moves BAR2 (the
 * shared memory, placed above 4 GiB, out of a 32-bit guest's reach) to
 * SHM_LOW with memory decoding off, sets MSI-X vector 0 to IDT vector 0x40 on
 * APIC 0 and enables MSI-X, reads its peer id from IVPOSITION, and writes it
 * to port 0x614 and sets its slot's ready. Then it waits for the host's go block in the shared memory
 * (struct ctl) and plays ping-pong with the other peer: the initiator bumps
 * its counter and rings the other's vector 0, the responder answers each ring
 * with its own; each checks the other's counter on every interrupt. At the end
 * it writes the sum of the host's 64 message bytes and "peer <id> done" into
 * its result slot, then port 0x618 <- rounds done. Errors: port 0x61c <- code.
 * With bench_kib set, the responder then writes and reads bench_kib KiB of
 * guest RAM and then as much of the shared memory, stepping its slot's phase
 * 1 -> 2 -> 3 around them, so that a host polling the phase times each (no
 * exit in between: QEMU's guest runs it too). With flooder = its id + 1 it
 * instead rings peer flood_to's vector 1 in a tight loop forever, its count
 * in its slot's counter every 256 rings.
 * 32-bit, paging off: every address below 4 GiB. */
#include "rt.h"

#define PORT_ID     0x614
#define PORT_DONE   0x618
#define PORT_ERROR  0x61c

#define SHM_LOW     0xc8000000u   /* in Kindling's 32-bit PCI window, below the virtio-mmio transports */
#define VECTOR      0x40
#define CTL_MAGIC   0x6b696e64u   /* "kind" */

#define CFG_ADDR 0xcf8
#define CFG_DATA 0xcfc
#define IVPOSITION 8
#define DOORBELL 12

/* The host's block at offset 0 of the shared memory, and each peer's slot. */
struct ctl {
    volatile uint32_t go;          /* CTL_MAGIC when the rest is set */
    volatile uint32_t initiator;   /* the peer id that rings first */
    volatile uint32_t responder;
    volatile uint32_t rounds;
    volatile uint8_t message[64];  /* the host's bytes, summed by each peer */
    volatile uint32_t bench_kib;   /* 0: no bandwidth pass */
    volatile uint32_t flooder;     /* at 84: id + 1 of a peer that only floods; 0: none */
    volatile uint32_t flood_to;    /* at 88: the peer it rings, on vector 1 */
};
struct slot {                      /* at 0x100 + id * 0x100 */
    volatile uint32_t counter;
    volatile uint32_t message_sum;
    volatile char text[32];
    volatile uint32_t phase;       /* at 0x28: the bandwidth pass's progress */
    volatile uint32_t ready;       /* at 0x2c: 1 once MSI-X is on, so the host may send go */
};

#define RAM_BUFFER  0x01000000u    /* 16 MiB in: above the guest image, below 64 MiB of RAM */
#define SHM_BUFFER  0x1000u        /* past the control block and the slots */

/* Writes then reads back kib KiB at base, one 32-bit word at a time. */
static uint32_t touch(uint32_t base, uint32_t kib)
{
    volatile uint32_t *p = (volatile uint32_t *)base;
    uint32_t words = kib * 256, sum = 0;
    for (uint32_t i = 0; i < words; i++) {
        p[i] = i;
    }
    for (uint32_t i = 0; i < words; i++) {
        sum += p[i];
    }
    return sum;
}

static volatile uint32_t interrupts;

void on_doorbell(void);
ISR_ENTRY(doorbell_entry, on_doorbell);

void on_doorbell(void)
{
    interrupts++;
    lapic_eoi();
}

static inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static uint32_t cfg_addr(unsigned slot, unsigned reg)
{
    return 0x80000000u | slot << 11 | (reg & 0xfc);
}

static uint32_t cfg_read32(unsigned slot, unsigned reg)
{
    outl(CFG_ADDR, cfg_addr(slot, reg));
    return inl(CFG_DATA);
}

static void cfg_write32(unsigned slot, unsigned reg, uint32_t v)
{
    outl(CFG_ADDR, cfg_addr(slot, reg));
    outl(CFG_DATA, v);
}

static uint16_t cfg_read16(unsigned slot, unsigned reg)
{
    outl(CFG_ADDR, cfg_addr(slot, reg));
    return inw(CFG_DATA + (reg & 2));
}

static void cfg_write16(unsigned slot, unsigned reg, uint16_t v)
{
    outl(CFG_ADDR, cfg_addr(slot, reg));
    outw(CFG_DATA + (reg & 2), v);
}

NORETURN static void fail(uint32_t code)
{
    outl(PORT_ERROR, code);
    exit();
}

static void wait_interrupts(uint32_t n)
{
    cpu_cli();
    while (interrupts < n) {
        cpu_sti_hlt(); /* only the doorbell's MSI wakes it: a lost one is the test's timeout */
        cpu_cli();
    }
}

void guest_main(uint32_t start_info)
{
    (void)start_info;
    unsigned slot;
    for (slot = 0; slot < 32; slot++) {
        if (cfg_read32(slot, 0) == 0x11101af4u) {
            break;
        }
    }
    if (slot == 32) {
        fail(1);
    }
    uint32_t regs = cfg_read32(slot, 0x10) & ~0xfu;
    uint32_t table = cfg_read32(slot, 0x14) & ~0xfu;
    if (regs == 0 || table == 0) {
        fail(2);
    }

    /* Move BAR2 as a driver would: decoding off, the new address, decoding on. */
    uint16_t cmd = cfg_read16(slot, 0x04);
    cfg_write16(slot, 0x04, cmd & ~2u);
    cfg_write32(slot, 0x18, SHM_LOW | (cfg_read32(slot, 0x18) & 0xf));
    cfg_write32(slot, 0x1c, 0);
    cfg_write16(slot, 0x04, cmd | 2 | 4); /* memory decode, bus master (MSI-X writes) */
    if ((cfg_read32(slot, 0x18) & ~0xfu) != SHM_LOW) {
        fail(3);
    }

    /* MSI-X: entry 0 -> vector 0x40 on APIC 0, unmasked; then enable. */
    unsigned cap = cfg_read32(slot, 0x34) & 0xfc;
    while (cap != 0 && (cfg_read32(slot, cap) & 0xff) != 0x11) {
        cap = (cfg_read32(slot, cap) >> 8) & 0xfc;
    }
    if (cap == 0) {
        fail(4);
    }
    idt_init();
    idt_set_handler(VECTOR, doorbell_entry);
    lapic_enable();
    mmio_write32(table + 0, LAPIC_BASE);
    mmio_write32(table + 4, 0);
    mmio_write32(table + 8, VECTOR);
    mmio_write32(table + 12, 0);
    cfg_write16(slot, cap + 2, (cfg_read16(slot, cap + 2) | 0x8000u) & ~0x4000u);

    uint32_t id = mmio_read32(regs + IVPOSITION);
    outl(PORT_ID, id);

    struct ctl *ctl = (struct ctl *)SHM_LOW;
    if (id > 8) {
        fail(5);
    }
    ((struct slot *)(SHM_LOW + 0x100 + id * 0x100))->ready = 1;
    while (ctl->go != CTL_MAGIC) {
        __asm__ volatile("pause");
    }
    if (ctl->flooder == id + 1) {
        /* A guest ringing in a tight loop: it must slow nobody but itself. Its count in its slot. */
        uint32_t to = ctl->flood_to;
        struct slot *me = (struct slot *)(SHM_LOW + 0x100 + id * 0x100);
        for (uint32_t n = 1;; n++) {
            mmio_write32(regs + DOORBELL, to << 16 | 1);
            if ((n & 255) == 0) {
                me->counter = n;
            }
        }
    }
    uint32_t other = id == ctl->initiator ? ctl->responder : ctl->initiator;
    uint32_t rounds = ctl->rounds;
    struct slot *mine = (struct slot *)(SHM_LOW + 0x100 + id * 0x100);
    struct slot *theirs = (struct slot *)(SHM_LOW + 0x100 + other * 0x100);
    if (other > 8) {
        fail(5);
    }
    for (uint32_t r = 1; r <= rounds; r++) {
        /* Each checks the other's counter before its own ring lets the other move on. */
        if (id == ctl->initiator) {
            mine->counter = r;
            mmio_write32(regs + DOORBELL, other << 16 | 0);
            wait_interrupts(r);
            if (theirs->counter != r) {
                fail(0x100 + r);
            }
        } else {
            wait_interrupts(r);
            if (theirs->counter != r) {
                fail(0x100 + r);
            }
            mine->counter = r;
            mmio_write32(regs + DOORBELL, other << 16 | 0);
        }
    }
    uint32_t sum = 0;
    for (unsigned i = 0; i < sizeof ctl->message; i++) {
        sum += ctl->message[i];
    }
    mine->message_sum = sum;
    const char *text = "peer ? done";
    for (unsigned i = 0; text[i]; i++) {
        mine->text[i] = text[i] == '?' ? (char)('0' + id) : text[i];
    }
    uint32_t kib = ctl->bench_kib;
    if (id == ctl->responder && kib != 0) {
        mine->phase = 1;
        uint32_t a = touch(RAM_BUFFER, kib);
        mine->phase = 2;
        uint32_t b = touch(SHM_LOW + SHM_BUFFER, kib);
        mine->phase = 3;
        if (a != b) {
            fail(6);
        }
    }
    outl(PORT_DONE, rounds);
}
