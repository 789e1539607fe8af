/* failread: reads from a device that fails on every read, reporting each value
 * read to port 0x674. Before each read the guest makes an access that leaves
 * other bytes where KVM puts the read's result (the PIO data area,
 * kvm_run.mmio.data), so a read the VMM does not complete shows up as those
 * stale bytes (or as zeros, where KVM clears the PIO data area for an IN)
 * instead of all ones. */
#include "rt.h"

#define PORT_BROKEN  0x670      /* 4 ports: writes are accepted, reads fail */
#define PORT_REPORT  0x674
#define MMIO_BROKEN  0xd0002000u

static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static inline void outsl(uint16_t port, const uint32_t *p, uint32_t n)
{
    __asm__ volatile("cld; rep outsl" : "+S"(p), "+c"(n) : "d"(port) : "memory");
}

static inline void insl(uint16_t port, uint32_t *p, uint32_t n)
{
    __asm__ volatile("cld; rep insl" : "+D"(p), "+c"(n) : "d"(port) : "memory");
}

void guest_main(uint32_t start_info)
{
    (void)start_info;
    static const uint32_t stale[4] = { 0x11111111, 0x22222222, 0x33333333, 0x44444444 };
    static uint32_t got[4];

    outl(PORT_BROKEN, 0x12345678);
    outl(PORT_REPORT, inl(PORT_BROKEN));

    outb(PORT_BROKEN, 0x5a);
    outl(PORT_REPORT, inb(PORT_BROKEN));

    outsl(PORT_BROKEN, stale, 4);
    insl(PORT_BROKEN, got, 4);
    for (int i = 0; i < 4; i++)
        outl(PORT_REPORT, got[i]);

    mmio_write32(MMIO_BROKEN, 0x9abcdef0);
    outl(PORT_REPORT, mmio_read32(MMIO_BROKEN));
}
