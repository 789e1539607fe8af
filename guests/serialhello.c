/* serialhello: writes one line to the 16550 UART at 0x3f8, then exits. It boots, prints and resets
 * and nothing more, so timing a VMM's whole process on it measures that VMM's own start-up. Bytes
 * go straight to THR without waiting for LSR.THRE: the VMMs' UARTs (Kindling's, QEMU's) take a
 * byte at every write, and polling would double the exits. */
#include "rt.h"

#define UART_THR 0x3f8

void guest_main(uint32_t start_info)
{
    (void)start_info;
    for (const char *p = "Hello, serial!\n"; *p; p++)
        outb(UART_THR, *p);
}
