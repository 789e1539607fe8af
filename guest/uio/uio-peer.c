/*
 * uio-peer: use a platform device bound to uio_pdrv_genirq from the Kindling
 * test guest: its memory regions (the maps of /dev/uioN) and its interrupt.
 * See guest/README.md.
 *
 *   uio-peer [-d /dev/uioN] info | read MAP OFF LEN | write MAP OFF HEX
 *                           | r32 MAP OFF | w32 MAP OFF VALUE
 *                           | irq MAP RAISE ACK N MS
 *
 * irq: N times, write 1 to register RAISE of MAP (the device asserts its
 * interrupt), enable the interrupt, wait up to MS ms for it, then write 1 to
 * register ACK (the device stops asserting). Prints "interrupts=N count=C",
 * C being uio's count of interrupts handled.
 * Exit status: 0 ok, 1 an interrupt did not come in time, 2 error.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *prog = "uio-peer";
static const char *dev = "/dev/uio0";

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (%s)\n", errno ? strerror(errno) : "-");
    exit(2);
}

#include "../common/peer-args.h"

static void usage(void)
{
    fprintf(stderr, "usage: %s [-d /dev/uioN] info | read MAP OFF LEN | write MAP OFF HEX | r32 MAP OFF"
            " | w32 MAP OFF VALUE | irq MAP RAISE ACK N MS\n", prog);
    exit(2);
}

/* /sys/class/uio/uioN/<rel>, first line, into buf; 0 if absent */
static int sysfs(const char *rel, char *buf, size_t size)
{
    char path[256];
    snprintf(path, sizeof path, "/sys/class/uio/%s/%s", strrchr(dev, '/') + 1, rel);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = 0;
    return ok;
}

static unsigned long map_size(unsigned long map)
{
    char rel[64], buf[64];
    snprintf(rel, sizeof rel, "maps/map%lu/size", map);
    if (!sysfs(rel, buf, sizeof buf))
        die("%s has no such map", dev);
    return number(buf, ~0UL);
}

/* uio maps map N at offset N pages of the device */
static volatile uint8_t *map(int fd, unsigned long n, unsigned long *size)
{
    long page = sysconf(_SC_PAGESIZE);
    *size = map_size(n);
    size_t len = (*size + page - 1) & ~(size_t)(page - 1);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)n * page);
    if (p == MAP_FAILED)
        die("cannot mmap a map of %s", dev);
    return p;
}

static void check_range(unsigned long off, unsigned long len, unsigned long size)
{
    if (off > size || len > size - off) {
        char what[96];
        snprintf(what, sizeof what, "0x%lx+%lu > %lu", off, len, size);
        errno = 0;
        die("out of the map: %s", what);
    }
}

static void info(void)
{
    char name[128] = "?", rel[64], addr[64], size[64];
    sysfs("name", name, sizeof name);
    printf("name=%s", name);
    for (int i = 0; i < 5; i++) {
        snprintf(rel, sizeof rel, "maps/map%d/addr", i);
        if (!sysfs(rel, addr, sizeof addr))
            break;
        snprintf(rel, sizeof rel, "maps/map%d/size", i);
        sysfs(rel, size, sizeof size);
        printf(" map%d=%s+%s", i, addr, size);
    }
    putchar('\n');
}

/* enable the interrupt, wait for it; 1 if it came */
static int wait_irq(int fd, int ms)
{
    uint32_t one = 1, count;
    if (write(fd, &one, sizeof one) != sizeof one)
        die("cannot enable the interrupt of %s", dev);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, ms);
    if (r < 0)
        die("poll %s", dev);
    if (r == 0)
        return 0;
    if (read(fd, &count, sizeof count) != sizeof count)
        die("cannot read the interrupt count of %s", dev);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "-d") == 0) {
        dev = argv[2];
        argc -= 2;
        argv += 2;
    }
    if (argc < 2 || !strrchr(dev, '/'))
        usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "info") == 0 && argc == 2) {
        info();
        return 0;
    }
    int fd = open(dev, O_RDWR);
    if (fd < 0)
        die("cannot open %s", dev);
    unsigned long size;
    if (strcmp(cmd, "read") == 0 && argc == 5) {
        volatile uint8_t *m = map(fd, number(argv[2], 4), &size);
        unsigned long off = number(argv[3], ~0UL), len = number(argv[4], 1 << 20);
        check_range(off, len, size);
        for (unsigned long i = 0; i < len; i++)
            printf("%02x", m[off + i]);
        putchar('\n');
    } else if (strcmp(cmd, "write") == 0 && argc == 5) {
        volatile uint8_t *m = map(fd, number(argv[2], 4), &size);
        unsigned long off = number(argv[3], ~0UL), len = strlen(argv[4]) / 2;
        check_range(off, len, size);
        for (unsigned long i = 0; i < len; i++) {
            int hi = hexval(argv[4][2 * i]), lo = hexval(argv[4][2 * i + 1]);
            if (hi < 0 || lo < 0 || strlen(argv[4]) % 2)
                die("bad hex: %s", argv[4]);
            m[off + i] = (uint8_t)(hi << 4 | lo);
        }
    } else if (strcmp(cmd, "r32") == 0 && argc == 4) {
        volatile uint8_t *m = map(fd, number(argv[2], 4), &size);
        unsigned long off = number(argv[3], ~0UL);
        check_range(off, 4, size);
        printf("0x%08x\n", *(volatile uint32_t *)(m + (off & ~3UL)));
    } else if (strcmp(cmd, "w32") == 0 && argc == 5) {
        volatile uint8_t *m = map(fd, number(argv[2], 4), &size);
        unsigned long off = number(argv[3], ~0UL);
        check_range(off, 4, size);
        *(volatile uint32_t *)(m + (off & ~3UL)) = (uint32_t)number(argv[4], 0xffffffffUL);
    } else if (strcmp(cmd, "irq") == 0 && argc == 7) {
        volatile uint8_t *m = map(fd, number(argv[2], 4), &size);
        unsigned long raise = number(argv[3], ~0UL), ack = number(argv[4], ~0UL);
        unsigned long n = number(argv[5], 1000000);
        int ms = (int)number(argv[6], 3600000);
        check_range(raise, 4, size);
        check_range(ack, 4, size);
        unsigned long got = 0;
        for (; got < n; got++) {
            *(volatile uint32_t *)(m + raise) = 1;
            if (!wait_irq(fd, ms))
                break;
            *(volatile uint32_t *)(m + ack) = 1;
        }
        uint32_t count = 0;
        char buf[32];
        if (sysfs("event", buf, sizeof buf))
            count = (uint32_t)number(buf, 0xffffffffUL);
        printf("interrupts=%lu count=%u\n", got, count);
        return got == n ? 0 : 1;
    } else {
        usage();
    }
    return 0;
}
