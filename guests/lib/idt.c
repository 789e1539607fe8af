#include "rt.h"

struct idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t zero;
    uint8_t type_attr;
    uint16_t offset_hi;
} __attribute__((packed));

#define GATE_INTERRUPT32 0x8e   /* present, DPL 0, 32-bit interrupt gate */

static struct idt_gate idt[256];

/* Entered straight from the gate; it never returns, so the frame is left alone. */
static NORETURN void unexpected_vector(void)
{
    outb(PORT_UNEXPECTED, 0xee);
    exit();
}

void idt_set_handler(uint8_t vector, isr_t entry)
{
    uint16_t cs;
    uint32_t off = (uint32_t)(uintptr_t)entry;

    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    idt[vector] = (struct idt_gate){
        .offset_lo = off & 0xffff, .selector = cs, .zero = 0,
        .type_attr = GATE_INTERRUPT32, .offset_hi = off >> 16,
    };
}

void idt_init(void)
{
    struct { uint16_t limit; uint32_t base; } __attribute__((packed)) idtr = {
        sizeof(idt) - 1, (uint32_t)(uintptr_t)idt,
    };

    for (unsigned v = 0; v < 256; v++)
        idt_set_handler(v, unexpected_vector);
    __asm__ volatile("lidt %0" :: "m"(idtr));
}
