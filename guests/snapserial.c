/* snapserial: the microVM snapshot tests' guest. Forever: a delay, then count += 1 (a word in .bss)
 * and a line "count=<count> tag=<tag>" on the 16550's THR (0x3f8), where tag is the word at
 * TAG_ADDR, which the host writes into one VM's memory to tell its clones apart. A VM restored
 * from a snapshot goes on from the saved count. Never exits: the host stops it. */
#include "rt.h"

#define UART_THR 0x3f8
#define TAG_ADDR 0x10000

static volatile uint32_t count;

static void out_str(const char *s)
{
    for (; *s; s++)
        outb(UART_THR, (uint8_t)*s);
}

static void out_dec(uint32_t v)
{
    char b[11];
    int i = 10;
    b[i] = 0;
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    out_str(b + i);
}

void guest_main(uint32_t start_info)
{
    (void)start_info;
    for (;;) {
        for (volatile uint32_t d = 0; d < 5000; d++) {
        }
        count++;
        out_str("count=");
        out_dec(count);
        out_str(" tag=");
        out_dec(*(volatile uint32_t *)TAG_ADDR);
        out_str("\n");
    }
}
