/* irqlevel: IOAPIC pin 10 -> vector 0x30 on APIC 0, level-triggered; takes
 * three interrupts. Port 0x610 <- 1 (ready, outb) before interrupts are
 * enabled; the handler acknowledges the device by writing the running count
 * to 0x614 (outl), then EOIs. Unexpected vectors: 0xee to port 0x6ff, exit. */
#include "rt.h"

#define PORT_READY  0x610
#define PORT_ACK    0x614
#define IRQ_PIN     10
#define IRQ_VECTOR  0x30
#define IRQS_WANTED 3

static volatile uint32_t irq_count;

void on_irq(void);
ISR_ENTRY(irq_entry, on_irq);

void on_irq(void)
{
    outl(PORT_ACK, ++irq_count);
    lapic_eoi();
}

void guest_main(uint32_t start_info)
{
    (void)start_info;
    idt_init();
    idt_set_handler(IRQ_VECTOR, irq_entry);
    lapic_enable();
    ioapic_route_level(IRQ_PIN, IRQ_VECTOR, 0);

    outb(PORT_READY, 1);
    while (irq_count < IRQS_WANTED) {
        cpu_sti_hlt();
        cpu_cli();
    }
}
