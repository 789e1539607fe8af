/*
 * kvm-exit-bench: the C baseline for Kindling's exit benchmark.
 *
 * A minimal VMM: one VM with 64 MiB of RAM at guest physical 0, an in-kernel
 * irqchip and a TSS address (as a real VMM sets them up), one vCPU entered at
 * the PVH entry of exitloop.elf in 32-bit protected mode (flat segments,
 * paging off, interrupts off, EBX = 0: the guest ignores hvm_start_info).
 *
 * Usage: kvm-exit-bench <exitloop.elf> [N]      (N >= 2, default 10000)
 *
 * The guest reads N from port 0x710, then for i = 0..N-1 writes i to port
 * 0x700 (outl) and i to MMIO 0xd0001000 (32-bit store), then writes 0xfe to
 * port 0x64. So its exits alternate PIO(i), MMIO(i).
 *
 * Timing (the Java benchmark uses the same definitions and reads the clock
 * as often): CLOCK_MONOTONIC is read just before and just after each
 * KVM_RUN, and t(exit) is the read after the KVM_RUN that returned with it. An
 * interval between two consecutive exits is one round trip: finishing the
 * earlier exit in user space, KVM_RUN re-entering the guest, the guest
 * running to its next access, and that access exiting back to user space.
 *   mmio_ns = mean of t(MMIO i) - t(PIO i),     i = 0..N-1  (N intervals)
 *   pio_ns  = mean of t(PIO i) - t(MMIO i-1),   i = 1..N-1  (N-1 intervals)
 *   pio_mmio_roundtrip_ns = (t(MMIO N-1) - t(PIO 0)) / (2N - 1),
 *     the mean over all those intervals; exits = 2N.
 *   user_ns = the same span minus the time spent inside KVM_RUN in it,
 *     / (2N - 1): user space per exit, from KVM_RUN returning to the next
 *     KVM_RUN.
 * Output, one "key value" line each on stdout:
 *   pio_mmio_roundtrip_ns <ns> exits <2N>
 *   pio_ns <ns>
 *   mmio_ns <ns>
 *   user_ns <ns>
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RAM_SIZE        (64u << 20)
#define TSS_ADDR        0xfffbd000u
#define GDT_ADDR        0x500u
#define CODE_SEL        0x08
#define DATA_SEL        0x10

#define PORT_COUNT      0x710
#define PORT_PIO        0x700
#define MMIO_ADDR       0xd0001000u
#define PORT_RESET      0x64
#define RESET_CMD       0xfe
#define PORT_DEBUGCON   0xe9

#define XEN_ELFNOTE_PHYS32_ENTRY 18

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kvm-exit-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static int xioctl(int fd, unsigned long req, unsigned long arg, const char *what)
{
    int r = ioctl(fd, req, arg);
    if (r < 0)
        die("%s: %s", what, strerror(errno));
    return r;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The PVH entry: a "Xen" note of type XEN_ELFNOTE_PHYS32_ENTRY in a PT_NOTE segment. */
static uint32_t pvh_entry(const uint8_t *img, size_t size, const Elf32_Phdr *ph)
{
    size_t off = ph->p_offset, end = off + ph->p_filesz;
    if (end > size || end < off)
        die("PT_NOTE outside the file");
    while (off + sizeof(Elf32_Nhdr) <= end) {
        const Elf32_Nhdr *nh = (const Elf32_Nhdr *)(img + off);
        size_t name = off + sizeof(*nh);
        size_t desc = name + ((nh->n_namesz + 3) & ~3u);
        size_t next = desc + ((nh->n_descsz + 3) & ~3u);
        if (next > end)
            die("truncated ELF note");
        if (nh->n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh->n_namesz == 4 &&
            memcmp(img + name, "Xen", 4) == 0 && nh->n_descsz >= 4)
            return *(const uint32_t *)(img + desc);
        off = next;
    }
    return 0;
}

/* Copies the PT_LOAD segments of a 32-bit ELF to their physical addresses;
 * returns the PVH entry point. */
static uint32_t load_elf(const char *path, uint8_t *ram)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        die("%s: %s", path, strerror(errno));
    size_t size = st.st_size;
    uint8_t *img = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (img == MAP_FAILED)
        die("mmap %s: %s", path, strerror(errno));

    const Elf32_Ehdr *eh = (const Elf32_Ehdr *)img;
    if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
        eh->e_ident[EI_CLASS] != ELFCLASS32 || eh->e_machine != EM_386)
        die("%s: not a 32-bit x86 ELF", path);
    if (eh->e_phoff + (size_t)eh->e_phnum * sizeof(Elf32_Phdr) > size)
        die("%s: program headers outside the file", path);

    uint32_t entry = 0;
    const Elf32_Phdr *phs = (const Elf32_Phdr *)(img + eh->e_phoff);
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        const Elf32_Phdr *ph = &phs[i];
        if (ph->p_type == PT_NOTE && !entry) {
            entry = pvh_entry(img, size, ph);
        } else if (ph->p_type == PT_LOAD) {
            if ((uint64_t)ph->p_paddr + ph->p_memsz > RAM_SIZE || ph->p_filesz > ph->p_memsz ||
                (uint64_t)ph->p_offset + ph->p_filesz > size)
                die("%s: segment %u does not fit", path, i);
            memcpy(ram + ph->p_paddr, img + ph->p_offset, ph->p_filesz);
            memset(ram + ph->p_paddr + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
        }
    }
    munmap(img, size);
    if (!entry)
        die("%s: no PVH entry note (Xen, type %d)", path, XEN_ELFNOTE_PHYS32_ENTRY);
    return entry;
}

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type)
{
    return (struct kvm_segment){
        .base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
        .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
    };
}

/* PVH machine state: 32-bit protected mode, paging off, flat segments
 * described by a GDT in guest memory, no IDT, interrupts off. */
static void setup_pvh(int vcpu, uint8_t *ram, uint32_t entry)
{
    static const uint64_t gdt[] = {
        0,
        0x00cf9b000000ffffull,  /* CODE_SEL: 32-bit code, base 0, 4 GiB */
        0x00cf93000000ffffull,  /* DATA_SEL: data, base 0, 4 GiB */
    };
    memcpy(ram + GDT_ADDR, gdt, sizeof(gdt));

    struct kvm_sregs sregs;
    xioctl(vcpu, KVM_GET_SREGS, (unsigned long)&sregs, "KVM_GET_SREGS");
    sregs.cs = flat_segment(CODE_SEL, 0xb);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = flat_segment(DATA_SEL, 0x3);
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = sizeof(gdt) - 1;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = 0x11;           /* PE | ET */
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
    xioctl(vcpu, KVM_SET_SREGS, (unsigned long)&sregs, "KVM_SET_SREGS");

    struct kvm_regs regs = { .rflags = 0x2, .rip = entry, .rbx = 0 };
    xioctl(vcpu, KVM_SET_REGS, (unsigned long)&regs, "KVM_SET_REGS");
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3)
        die("usage: kvm-exit-bench <exitloop.elf> [N]");
    char *endp;
    unsigned long n = argc == 3 ? strtoul(argv[2], &endp, 0) : 10000;
    if ((argc == 3 && *endp) || n < 2 || n > 0xffffffffu)
        die("N must be an integer in [2, 2^32)");

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        die("/dev/kvm: %s", strerror(errno));
    if (xioctl(kvm, KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION") != KVM_API_VERSION)
        die("unexpected KVM API version");
    int vm = xioctl(kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
    xioctl(vm, KVM_SET_TSS_ADDR, TSS_ADDR, "KVM_SET_TSS_ADDR");
    xioctl(vm, KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");

    uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ram == MAP_FAILED)
        die("mmap RAM: %s", strerror(errno));
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = RAM_SIZE,
        .userspace_addr = (uintptr_t)ram,
    };
    xioctl(vm, KVM_SET_USER_MEMORY_REGION, (unsigned long)&region, "KVM_SET_USER_MEMORY_REGION");
    uint32_t entry = load_elf(argv[1], ram);

    int vcpu = xioctl(vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
    int run_size = xioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        die("mmap kvm_run: %s", strerror(errno));
    setup_pvh(vcpu, ram, entry);

    uint64_t pio_count = 0, mmio_count = 0;
    uint64_t t_first_pio = 0, t_last_pio = 0, t_last_mmio = 0;
    uint64_t pio_sum = 0, mmio_sum = 0;
    uint64_t in_run = 0, in_run_first = 0, in_run_last = 0;
    for (;;) {
        uint64_t entered = now_ns();
        int r = ioctl(vcpu, KVM_RUN, 0);
        uint64_t t = now_ns();
        in_run += t - entered;
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            die("KVM_RUN: %s", strerror(errno));
        }

        if (run->exit_reason == KVM_EXIT_IO) {
            uint8_t *data = (uint8_t *)run + run->io.data_offset;
            uint16_t port = run->io.port;
            int out = run->io.direction == KVM_EXIT_IO_OUT;
            if (run->io.count != 1)
                die("string I/O on port %#x", port);
            if (out && port == PORT_PIO && run->io.size == 4) {
                uint32_t v;
                memcpy(&v, data, 4);
                if (v != pio_count || pio_count != mmio_count)
                    die("PIO exit %u out of order (pio %lu, mmio %lu)", v,
                        (unsigned long)pio_count, (unsigned long)mmio_count);
                if (pio_count == 0) {
                    t_first_pio = t;
                    in_run_first = in_run;
                } else
                    pio_sum += t - t_last_mmio;
                t_last_pio = t;
                pio_count++;
            } else if (!out && port == PORT_COUNT && run->io.size == 4) {
                uint32_t v = n;
                memcpy(data, &v, 4);
            } else if (out && port == PORT_RESET && run->io.size == 1 && data[0] == RESET_CMD) {
                break;
            } else if (out && port == PORT_DEBUGCON && run->io.size == 1) {
                fputc(data[0], stderr);
            } else {
                die("unexpected %s port %#x size %u", out ? "write to" : "read from",
                    port, run->io.size);
            }
        } else if (run->exit_reason == KVM_EXIT_MMIO) {
            uint64_t addr = run->mmio.phys_addr;
            if (!run->mmio.is_write || addr != MMIO_ADDR || run->mmio.len != 4)
                die("unexpected MMIO %s at %#llx len %u", run->mmio.is_write ? "write" : "read",
                    (unsigned long long)addr, run->mmio.len);
            uint32_t v;
            memcpy(&v, run->mmio.data, 4);
            if (v != mmio_count || mmio_count + 1 != pio_count)
                die("MMIO exit %u out of order (pio %lu, mmio %lu)", v,
                    (unsigned long)pio_count, (unsigned long)mmio_count);
            mmio_sum += t - t_last_pio;
            t_last_mmio = t;
            in_run_last = in_run;
            mmio_count++;
        } else if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR) {
            die("KVM_EXIT_INTERNAL_ERROR suberror %u", run->internal.suberror);
        } else {
            die("unexpected exit reason %u", run->exit_reason);
        }
    }

    if (pio_count != n || mmio_count != n)
        die("guest ended after %lu PIO and %lu MMIO exits, expected %lu each",
            (unsigned long)pio_count, (unsigned long)mmio_count, n);
    printf("pio_mmio_roundtrip_ns %.1f exits %lu\n",
           (double)(t_last_mmio - t_first_pio) / (double)(2 * n - 1), 2 * n);
    printf("pio_ns %.1f\n", (double)pio_sum / (double)(n - 1));
    printf("mmio_ns %.1f\n", (double)mmio_sum / (double)n);
    printf("user_ns %.1f\n", (double)((t_last_mmio - t_first_pio) - (in_run_last - in_run_first)) /
                               (double)(2 * n - 1));
    return 0;
}
