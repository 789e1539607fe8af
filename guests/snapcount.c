/* snapcount: the snapshot tests' guest. Forever: a delay of 2000 `dec ecx; jnz`, then count += 1 (a
 * word in memory) and acc = 5 * acc + 1 (held only in ESI, from acc = 0x12345678), then `outl` count
 * to 0x6c0 and `outl` acc to 0x6c4. A restored guest must go on from the saved count with the acc that
 * belongs to it: memory and registers both came back. Never exits: the host stops it. */
#include "rt.h"

#define PORT_COUNT 0x6c0
#define PORT_ACC   0x6c4

static volatile uint32_t count;

void guest_main(uint32_t start_info)
{
    (void)start_info;
    uint32_t acc = 0x12345678;
    /* One asm block, so the compiler never moves acc out of ESI. */
    __asm__ volatile(
        "1:\n\t"
        "mov $2000, %%ecx\n"
        "2:\n\t"
        "dec %%ecx\n\t"
        "jnz 2b\n\t"
        "incl %[cnt]\n\t"
        "lea 1(%%esi,%%esi,4), %%esi\n\t"
        "mov %[cnt], %%eax\n\t"
        "mov %[pc], %%dx\n\t"
        "out %%eax, %%dx\n\t"
        "mov %%esi, %%eax\n\t"
        "mov %[pa], %%dx\n\t"
        "out %%eax, %%dx\n\t"
        "jmp 1b"
        : [cnt] "+m"(count), "+S"(acc)
        : [pc] "i"(PORT_COUNT), [pa] "i"(PORT_ACC)
        : "eax", "ecx", "edx", "memory", "cc");
}
