/* hello: PIO and MMIO writes, then reads echoed back +1.
 * 8-bit MMIO only; the 64-bit MMIO value is read as two 32-bit loads
 * (0xd0000008 low, 0xd000000c high): 32-bit code has no 8-byte integer load
 * without SSE/MMX/x87, which these guests do not use. */
#include "rt.h"

#define PORT_OUT     0x600
#define PORT_IN      0x604
#define PORT_ECHO    0x608
#define MMIO_OUT     0xd0000000u
#define MMIO_IN32    0xd0000004u
#define MMIO_IN64_LO 0xd0000008u
#define MMIO_IN64_HI 0xd000000cu

void guest_main(uint32_t start_info)
{
    (void)start_info;
    for (const char *p = "Hello, PIO!"; *p; p++)
        outb(PORT_OUT, *p);
    for (const char *p = "Hello, MMIO!"; *p; p++)
        mmio_write8(MMIO_OUT, *p);

    uint32_t pio = inl(PORT_IN);
    uint32_t mmio32 = mmio_read32(MMIO_IN32);
    uint32_t lo = mmio_read32(MMIO_IN64_LO);
    uint32_t hi = mmio_read32(MMIO_IN64_HI);

    outl(PORT_ECHO, pio + 1);
    outl(PORT_ECHO, mmio32 + 1);
    outl(PORT_ECHO, lo + 1);
    outl(PORT_ECHO, hi + 1);
}
