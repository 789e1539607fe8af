/* smp: every vCPU enters here (the host starts all of them at the PVH entry).
 * Each writes its LAPIC id to 0x630, joins a rendezvous, then writes an
 * incrementing counter forever to 0x634 + 4 * id (0x634 for CPU 0, 0x638
 * for CPU 1). Rendezvous timeout (2^34 TSC cycles): 0xdead to 0x630, then exit. */
#include "rt.h"

#define PORT_ID        0x630
#define PORT_TICK_BASE 0x634
#define NR_CPUS        2
/* Rendezvous timeout in TSC cycles (about 6 s at 3 GHz): time, not an
 * iteration count, because the spin runs natively on some hosts and in KVM's
 * emulator (about 1M instructions/s) on others. */
#define SPIN_CYCLES    (1ull << 34)
#define TIMEOUT_MARK   0xdead

static volatile uint32_t arrived;

/* Returns once all NR_CPUS CPUs have arrived; ends the guest on timeout. */
static void rendezvous(void)
{
    uint64_t start = rdtsc();

    /* lock xadd; the last CPU to arrive need not wait. */
    if (__atomic_add_fetch(&arrived, 1, __ATOMIC_SEQ_CST) == NR_CPUS)
        return;
    while (arrived < NR_CPUS) {
        if (rdtsc() - start > SPIN_CYCLES) {
            outl(PORT_ID, TIMEOUT_MARK);
            exit();
        }
    }
}

void guest_main(uint32_t start_info)
{
    (void)start_info;
    uint32_t id = lapic_id();

    outl(PORT_ID, id);
    rendezvous();
    uint16_t port = PORT_TICK_BASE + 4 * id;
    for (uint32_t tick = 0;; tick++)
        outl(port, tick);
}
