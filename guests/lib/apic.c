#include "rt.h"

#define IOAPIC_REGSEL   0x00
#define IOAPIC_WIN      0x10
#define IOAPIC_REDTBL   0x10    /* pin n: low dword 0x10 + 2n, high dword 0x11 + 2n */
#define APIC_LVT_MASKED (1u << 16)

void lapic_enable(void)
{
    mmio_write32(LAPIC_BASE + LAPIC_LVT0, APIC_LVT_MASKED);
    mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x1ff);
}

static void ioapic_write(uint8_t reg, uint32_t value)
{
    mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
    mmio_write32(IOAPIC_BASE + IOAPIC_WIN, value);
}

void ioapic_route_edge(unsigned pin, uint8_t vector, uint8_t dest_apic_id)
{
    uint8_t reg = IOAPIC_REDTBL + 2 * pin;

    /* Destination first, so the entry is complete by the time the low
     * dword (which carries the mask bit, clear here) is written. */
    ioapic_write(reg + 1, (uint32_t)dest_apic_id << 24);
    /* Bits: 7:0 vector, 10:8 fixed (0), 11 physical (0), 13 active high (0),
     * 15 edge (0), 16 unmasked (0). */
    ioapic_write(reg, vector);
}

void ioapic_route_level(unsigned pin, uint8_t vector, uint8_t dest_apic_id)
{
    uint8_t reg = IOAPIC_REDTBL + 2 * pin;

    ioapic_write(reg + 1, (uint32_t)dest_apic_id << 24);
    /* As ioapic_route_edge, with bit 15 set: level-triggered. */
    ioapic_write(reg, (1u << 15) | vector);
}
