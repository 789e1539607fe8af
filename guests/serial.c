/* serial: talks on COM1 (0x3f8) by polling, without interrupts.
 * Writes "ready\n", then for each byte it receives: 'q' writes "bye\n" and
 * exits; 'f' writes 1000 lines "flood NNNNN\n" (12000 bytes) then
 * "flooded\n", 'F' the same with 8192 lines (96 KiB); any other byte is
 * echoed back. */
#include "rt.h"

#define COM1        0x3f8
#define COM1_LSR    (COM1 + 5)
#define LSR_DR      0x01

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* Transmission is instantaneous in the VMM's UART (THR is always empty). */
static void serial_putc(char c) { outb(COM1, (uint8_t)c); }

static void serial_puts(const char *s)
{
    while (*s)
        serial_putc(*s++);
}

static char serial_getc(void)
{
    while (!(inb(COM1_LSR) & LSR_DR))
        ;
    return (char)inb(COM1);
}

static void flood(unsigned lines)
{
    char line[] = "flood 00000\n";
    for (unsigned n = 0; n < lines; n++) {
        unsigned v = n;
        for (int i = 10; i >= 6; i--) {
            line[i] = (char)('0' + v % 10);
            v /= 10;
        }
        serial_puts(line);
    }
    serial_puts("flooded\n");
}

void guest_main(uint32_t start_info)
{
    (void)start_info;
    serial_puts("ready\n");
    for (;;) {
        char c = serial_getc();
        if (c == 'q')
            break;
        if (c == 'f')
            flood(1000);
        else if (c == 'F')
            flood(8192);
        else
            serial_putc(c);
    }
    serial_puts("bye\n");
}
