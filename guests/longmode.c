/* longmode: 64-bit guest, entered directly in long mode (lib/entry64.S).
 * Writes (1 << 40) >> 38 == 4 to port 0x650 and bits 63:32 of 1 << 40
 * (0x100) to port 0x654 with outl -- a 32-bit shift would give 4 but 0 for
 * the high half -- then "long mode\n" to the debug port, then exits. */
#include "rt.h"

#define PORT_SHIFT 0x650
#define PORT_HIGH  0x654

void guest_main(uint32_t start_info)
{
    (void)start_info;
    volatile uint64_t one = 1;      /* keep the shifts at run time */
    uint64_t v = one << 40;

    outl(PORT_SHIFT, (uint32_t)(v >> 38));
    outl(PORT_HIGH, (uint32_t)(v >> 32));
    puts("long mode\n");
}
