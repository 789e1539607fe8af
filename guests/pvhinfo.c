/* pvhinfo: reports the PVH start info the VMM built, so a test can check it.
 * Port 0x660 (outl): magic, version, nr_modules, memmap_entries; then per
 * memory-map entry: addr lo, addr hi, size lo, size hi, type; then, if there is
 * a module: its size (low 32 bits) and its first 4 bytes.
 * Port 0x664 (outb): the command line, byte by byte, without the NUL.
 * Then exit through the i8042 (0xfe to port 0x64). */
#include "rt.h"

#define PORT_WORDS 0x660
#define PORT_CMDLINE 0x664

struct hvm_start_info {
    uint32_t magic, version, flags, nr_modules;
    uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
    uint32_t memmap_entries, reserved;
};
struct hvm_memmap_table_entry { uint64_t addr, size; uint32_t type, reserved; };
struct hvm_modlist_entry { uint64_t paddr, size, cmdline_paddr, reserved; };

static void out64(uint64_t v)
{
    outl(PORT_WORDS, (uint32_t)v);
    outl(PORT_WORDS, (uint32_t)(v >> 32));
}

void guest_main(uint32_t start_info)
{
    const struct hvm_start_info *si = (const struct hvm_start_info *)(uintptr_t)start_info;
    outl(PORT_WORDS, si->magic);
    outl(PORT_WORDS, si->version);
    outl(PORT_WORDS, si->nr_modules);
    outl(PORT_WORDS, si->memmap_entries);
    const struct hvm_memmap_table_entry *e = (const void *)(uintptr_t)si->memmap_paddr;
    for (uint32_t i = 0; i < si->memmap_entries && i < 16; i++) {
        out64(e[i].addr);
        out64(e[i].size);
        outl(PORT_WORDS, e[i].type);
    }
    if (si->nr_modules > 0) {
        const struct hvm_modlist_entry *m = (const void *)(uintptr_t)si->modlist_paddr;
        outl(PORT_WORDS, (uint32_t)m->size);
        outl(PORT_WORDS, *(const uint32_t *)(uintptr_t)m->paddr);
    }
    for (const char *c = (const char *)(uintptr_t)si->cmdline_paddr; c && *c; c++)
        outb(PORT_CMDLINE, (uint8_t)*c);
}
