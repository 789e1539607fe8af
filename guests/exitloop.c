/* exitloop: N = inl(0x710); for i in 0..N-1: outl i to port 0x700, then a
 * 32-bit MMIO write of i to 0xd0001000; exit. The exit benchmark's guest. */
#include "rt.h"

#define PORT_COUNT 0x710
#define PORT_PIO   0x700
#define MMIO_ADDR  0xd0001000u

void guest_main(uint32_t start_info)
{
    (void)start_info;
    uint32_t n = inl(PORT_COUNT);
    for (uint32_t i = 0; i < n; i++) {
        outl(PORT_PIO, i);
        mmio_write32(MMIO_ADDR, i);
    }
}
