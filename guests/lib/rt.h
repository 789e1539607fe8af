/*
 * Kindling test-guest runtime: port I/O, MMIO, debug console, exit, LAPIC,
 * IOAPIC and IDT helpers. Freestanding; builds for i386 (PVH guests) and
 * x86-64 (the long-mode guest). Everything here executes at CPL0, which on
 * some hosts runs in KVM's instruction emulator, so stick to plain integer
 * instructions.
 */
#ifndef KINDLING_GUEST_RT_H
#define KINDLING_GUEST_RT_H

#include <stdint.h>

#define NORETURN __attribute__((noreturn))

/* Ports every guest may use. */
#define PORT_DEBUGCON    0xe9   /* putc/puts: one byte per outb */
#define PORT_RESET       0x64   /* i8042 command port: 0xfe here ends the guest */
#define RESET_CMD        0xfe
#define PORT_UNEXPECTED  0x6ff  /* catch-all interrupt handler writes 0xee here, then exits */

/* ---- port I/O ---- */
static inline void outb(uint16_t port, uint8_t v)  { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline uint32_t inl(uint16_t port)  { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* ---- MMIO: one access of exactly the given width ---- */
#define MMIO(type, addr) (*(volatile type *)(uintptr_t)(addr))
static inline void mmio_write8(uintptr_t a, uint8_t v)   { MMIO(uint8_t, a) = v; }
static inline void mmio_write32(uintptr_t a, uint32_t v) { MMIO(uint32_t, a) = v; }
static inline uint32_t mmio_read32(uintptr_t a)          { return MMIO(uint32_t, a); }

/* ---- CPU ---- */
static inline void cpu_cli(void) { __asm__ volatile("cli" ::: "memory"); }
/* Enable interrupts and halt in one step: sti's one-instruction shadow means an
 * interrupt that is already pending wakes the hlt instead of being taken before it. */
static inline void cpu_sti_hlt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

/* ---- console and exit (lib/rt.c) ---- */
static inline void putc(char c) { outb(PORT_DEBUGCON, (uint8_t)c); }
void puts(const char *s);
/* Ends the guest: the VMM treats 0xfe written to port 0x64 as "guest ended". */
NORETURN void exit(void);

/* Entry point every guest defines; start_info is EBX at PVH entry (the
 * physical address of struct hvm_start_info, magic 0x336ec578) and 0 for the
 * long-mode guest. Returning from it calls exit(). */
void guest_main(uint32_t start_info);

/* ---- local APIC (xAPIC MMIO) and IOAPIC (lib/apic.c) ---- */
#define LAPIC_BASE   0xfee00000u
#define LAPIC_ID     0x020
#define LAPIC_EOI    0x0b0
#define LAPIC_SVR    0x0f0
#define LAPIC_LVT0   0x350
#define IOAPIC_BASE  0xfec00000u

static inline uint32_t lapic_id(void) { return mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24; }
static inline void lapic_eoi(void)    { mmio_write32(LAPIC_BASE + LAPIC_EOI, 0); }
/* SVR = 0x1ff (software enable, spurious vector 0xff); masks LINT0 so the
 * (uninitialised) 8259 cannot inject ExtINT vectors through it. */
void lapic_enable(void);
/* Redirection entry for an IOAPIC pin: vector, fixed delivery, physical
 * destination dest_apic_id, edge triggered, active high, unmasked. */
void ioapic_route_edge(unsigned pin, uint8_t vector, uint8_t dest_apic_id);
/* The same, level-triggered (active high, unmasked). */
void ioapic_route_level(unsigned pin, uint8_t vector, uint8_t dest_apic_id);

/* ---- IDT and interrupt entries (lib/idt.c, lib/isr32.S; 32-bit guests only) ---- */
typedef void (*isr_t)(void);
/* Fills all 256 vectors with a catch-all (writes 0xee to PORT_UNEXPECTED,
 * then exits) and loads the IDT. */
void idt_init(void);
/* Points an interrupt gate at an entry made with ISR_ENTRY. */
void idt_set_handler(uint8_t vector, isr_t entry);
/* Defines `entry`, an interrupt entry that calls `void handler(void)` with
 * the caller-saved registers preserved and returns to the interrupted code
 * through isr_return (no IRET: see lib/isr32.S). handler must be extern. */
#define ISR_ENTRY(entry, handler)                                       \
    void entry(void);                                                   \
    __asm__(".pushsection .text\n"                                      \
            #entry ":\n\t"                                              \
            "pushl %eax\n\tpushl %ecx\n\tpushl %edx\n\t"                \
            "cld\n\tcall " #handler "\n\t"                              \
            "popl %edx\n\tpopl %ecx\n\tpopl %eax\n\t"                   \
            "jmp isr_return\n"                                          \
            ".popsection")

#endif
