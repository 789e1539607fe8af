/* vfioplat: drives the in-process platform device of the VFIO-platform tests through its window
 * at 0xc0000000: region 0 (4 KiB of memory, mmap-able) at +0, region 1 (4 KiB of registers, always
 * trapped) at +0x1000, and its level-triggered interrupt on IOAPIC pin 10 -> vector 0x30.
 * Region 1: 0x00 ID, 0x04 RAISE (write n: n interrupts, the next one after each acknowledgement),
 * 0x08 STATUS (bit 0: asserting), 0x0c ACK (write: the device stops asserting), 0x10 COUNT
 * (interrupts acknowledged). Reports each step with outl to port 0x610, in order:
 *   ID; region 0 word 0x100 after writing 0x11223344 there; the handler's count after RAISE 3;
 *   the device's COUNT; in the handler, region 0 word 0x100 read before the acknowledgement
 * (0x11223344 again: it traps while mappings are off on the slow path).
 * If port 0x614 reads 1, the guest then raises one more interrupt that its handler never
 * acknowledges nor ends, reports 0x57a11ed and halts for ever: the host must stay healthy. */
#include "rt.h"

#define BASE        0xc0000000u
#define REG(off)    (BASE + 0x1000u + (off))
#define PORT_REPORT 0x610
#define PORT_MODE   0x614
#define IRQ_PIN     10
#define IRQ_VECTOR  0x30

static volatile uint32_t handled;
static volatile uint32_t in_handler_read;
static volatile int never_ack;

void on_irq(void);
ISR_ENTRY(irq_entry, on_irq);

void on_irq(void)
{
    if (never_ack) {
        return;                          /* no ACK, no EOI: the interrupt stays in service */
    }
    if (mmio_read32(REG(0x08)) & 1) {
        in_handler_read = mmio_read32(BASE + 0x100);
        mmio_write32(REG(0x0c), 1);
        handled++;
    }
    lapic_eoi();                         /* a spurious one (the slow path's early unmask) is just ended */
}

void guest_main(uint32_t start_info)
{
    (void)start_info;
    idt_init();
    idt_set_handler(IRQ_VECTOR, irq_entry);
    lapic_enable();
    ioapic_route_level(IRQ_PIN, IRQ_VECTOR, 0);

    outl(PORT_REPORT, mmio_read32(REG(0x00)));
    mmio_write32(BASE + 0x100, 0x11223344u);
    outl(PORT_REPORT, mmio_read32(BASE + 0x100));

    mmio_write32(REG(0x04), 3);
    while (handled < 3) {
        cpu_sti_hlt();
        cpu_cli();
    }
    outl(PORT_REPORT, handled);
    outl(PORT_REPORT, mmio_read32(REG(0x10)));
    outl(PORT_REPORT, in_handler_read);

    if (inl(PORT_MODE) == 1) {
        never_ack = 1;
        mmio_write32(REG(0x04), 1);
        outl(PORT_REPORT, 0x57a11ed);
        for (;;) {
            cpu_sti_hlt();
        }
    }
}
