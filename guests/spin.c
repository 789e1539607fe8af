/* spin: N = inl(0x710); outb 1 to 0x712; N iterations of `dec ecx; jnz`;
 * outb 2 to 0x712; exit. The host times 1 -> 2 to get instructions/s
 * (2 instructions per iteration). */
#include "rt.h"

#define PORT_COUNT 0x710
#define PORT_MARK  0x712

void guest_main(uint32_t start_info)
{
    (void)start_info;
    uint32_t n = inl(PORT_COUNT);
    outb(PORT_MARK, 1);
    if (n)
        __asm__ volatile("1: dec %0\n\tjnz 1b" : "+c"(n) :: "cc");
    outb(PORT_MARK, 2);
}
