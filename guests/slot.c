/* slot: reads and writes a device memory slot the host maps at 0xe0000000
 * (read-only), and again after the host moves it to 0xe0100000. All values
 * are reported with outl to 0x680:
 *   a = 32-bit load 0xe0000000; 32-bit store 0x12345678 to 0xe0000000;
 *   b = 32-bit load 0xe0000000; inl 0x684 (the host moves the slot here);
 *   c = 32-bit load 0xe0100000; d = 32-bit load 0xe0000000; report a b c d;
 *   exit. */
#include "rt.h"

#define PORT_REPORT 0x680
#define PORT_MOVE   0x684
#define SLOT        0xe0000000u
#define MOVED       0xe0100000u

void guest_main(uint32_t start_info)
{
    (void)start_info;
    uint32_t a = mmio_read32(SLOT);
    mmio_write32(SLOT, 0x12345678);
    uint32_t b = mmio_read32(SLOT);
    (void)inl(PORT_MOVE);
    uint32_t c = mmio_read32(MOVED);
    uint32_t d = mmio_read32(SLOT);
    outl(PORT_REPORT, a);
    outl(PORT_REPORT, b);
    outl(PORT_REPORT, c);
    outl(PORT_REPORT, d);
}
