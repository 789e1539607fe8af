/* badmem: a 32-bit load from 0xe0000000 (neither RAM nor a device), written
 * to port 0x640 (outl), then a jump to 0xe0001000 (instruction fetch from
 * unbacked memory). Never exits through port 0x64. */
#include "rt.h"

#define UNBACKED_DATA 0xe0000000u
#define UNBACKED_CODE 0xe0001000u
#define PORT_VALUE    0x640

void guest_main(uint32_t start_info)
{
    (void)start_info;
    outl(PORT_VALUE, mmio_read32(UNBACKED_DATA));
    ((void (*)(void))UNBACKED_CODE)();
}
