#include "rt.h"

void puts(const char *s)
{
    while (*s)
        putc(*s++);
}

void exit(void)
{
    outb(PORT_RESET, RESET_CMD);
    /* Not reached when the VMM honours the reset; idle rather than spin. */
    for (;;)
        __asm__ volatile("cli; hlt");
}
