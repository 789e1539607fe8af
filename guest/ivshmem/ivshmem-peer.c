/*
 * ivshmem-peer: use an ivshmem PCI device (1af4:1110) from the Kindling test
 * guest through sysfs, without a kernel driver. See guest/README.md.
 *
 *   ivshmem-peer [-d BDF] info | read OFF LEN | write OFF HEX | ring PEER VEC | wait-status MS
 *
 * BAR0 (resource0) holds the registers, BAR2 (resource2) the shared memory.
 * Exit status: 0 ok, 1 wait-status timed out, 2 error (message on stderr).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PCI_DEVICES "/sys/bus/pci/devices"
#define IVSHMEM_VENDOR 0x1af4
#define IVSHMEM_DEVICE 0x1110

/* BAR0 registers, as 32-bit word indices */
enum { INTRMASK = 0, INTRSTATUS = 1, IVPOSITION = 2, DOORBELL = 3 };

static const char *prog = "ivshmem-peer";

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(2);
}

#include "../common/peer-args.h"

static void usage(void)
{
    fprintf(stderr, "usage: %s [-d BDF] info | read OFF LEN | write OFF HEX | ring PEER VEC"
            " | wait-status MS\n", prog);
    exit(2);
}

/* first line of <dir>/<name> as a number, or -1 */
static long sysfs_number(const char *dir, const char *name)
{
    char path[512], buf[64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = fgets(buf, sizeof buf, f) ? strtol(buf, NULL, 0) : -1;
    fclose(f);
    return v;
}

static int is_ivshmem(const char *dir)
{
    return sysfs_number(dir, "vendor") == IVSHMEM_VENDOR
        && sysfs_number(dir, "device") == IVSHMEM_DEVICE;
}

/* the first ivshmem device by name, into bdf */
static void find_device(char *bdf, size_t size)
{
    struct dirent **names;
    int n = scandir(PCI_DEVICES, &names, NULL, alphasort);
    if (n < 0)
        die("cannot list %s", PCI_DEVICES);
    int found = 0;
    for (int i = 0; i < n; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", PCI_DEVICES, names[i]->d_name);
        if (!found && names[i]->d_name[0] != '.' && is_ivshmem(dir)) {
            snprintf(bdf, size, "%s", names[i]->d_name);
            found = 1;
        }
        free(names[i]);
    }
    free(names);
    if (!found)
        die("no ivshmem device (%s)", "1af4:1110");
}

/* mmap <dir>/<name> read-write, shared; its file size into *size */
static volatile void *map_bar(const char *dir, const char *name, size_t *size)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_SYNC);
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0)
        die("cannot open %s", path);
    long page = sysconf(_SC_PAGESIZE);
    size_t len = ((size_t)st.st_size + page - 1) & ~(size_t)(page - 1);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die("cannot mmap %s", path);
    close(fd);
    *size = st.st_size;
    return p;
}

static void check_range(unsigned long off, unsigned long len, size_t size)
{
    if (off > size || len > size - off) {
        char what[96];
        snprintf(what, sizeof what, "0x%lx+%lu > %zu", off, len, size);
        die("beyond BAR2: %s", what);
    }
}

int main(int argc, char **argv)
{
    const char *dev = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "+d:")) != -1) {
        if (opt != 'd')
            usage();
        dev = optarg;
    }
    argc -= optind;
    argv += optind;
    if (argc < 1)
        usage();
    const char *cmd = argv[0];
    int nargs = !strcmp(cmd, "info") ? 0
              : !strcmp(cmd, "wait-status") ? 1
              : !strcmp(cmd, "read") || !strcmp(cmd, "write") || !strcmp(cmd, "ring") ? 2 : -1;
    if (nargs < 0 || argc != nargs + 1)
        usage();

    char bdf[256], dir[512];
    if (dev) {
        if (!*dev || strchr(dev, '/') || strlen(dev) >= sizeof bdf)
            die("bad device: %s", dev);
        snprintf(bdf, sizeof bdf, "%s", dev);
    } else {
        find_device(bdf, sizeof bdf);
    }
    snprintf(dir, sizeof dir, "%s/%s", PCI_DEVICES, bdf);
    if (access(dir, F_OK) != 0)
        die("no such PCI device: %s", bdf);
    if (!is_ivshmem(dir))
        die("not an ivshmem device (1af4:1110): %s", bdf);

    /* memory decoding on; fails harmlessly when already enabled or driver-bound */
    char path[600];
    snprintf(path, sizeof path, "%s/enable", dir);
    int fd = open(path, O_WRONLY);
    if (fd >= 0) {
        if (write(fd, "1", 1) < 0) { /* ignored */ }
        close(fd);
    }

    size_t regs_size, shm_size;
    if (!strcmp(cmd, "read") || !strcmp(cmd, "write")) {
        volatile uint8_t *shm = map_bar(dir, "resource2", &shm_size);
        unsigned long off = number(argv[1], ULONG_MAX);
        if (!strcmp(cmd, "read")) {
            unsigned long len = number(argv[2], ULONG_MAX);
            check_range(off, len, shm_size);
            for (unsigned long i = 0; i < len; i++)
                printf("%02x", shm[off + i]);
            putchar('\n');
        } else {
            const char *hex = argv[2];
            size_t n = strlen(hex);
            if (n % 2)
                die("odd number of hex digits: %s", hex);
            for (size_t i = 0; i < n; i++)
                if (hexval(hex[i]) < 0)
                    die("bad hex: %s", hex);
            check_range(off, n / 2, shm_size);
            for (size_t i = 0; i < n / 2; i++)
                shm[off + i] = hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]);
        }
        return fflush(stdout) ? 2 : 0;
    }

    volatile uint32_t *regs = map_bar(dir, "resource0", &regs_size);
    if (regs_size < 16)
        die("BAR0 too small: %s", bdf);
    if (!strcmp(cmd, "info")) {
        struct stat st;
        snprintf(path, sizeof path, "%s/resource2", dir);
        if (stat(path, &st) < 0)
            die("cannot stat %s", path);
        printf("ivshmem %s vendor=0x%04x device=0x%04x size=%lld ivposition=%d\n", bdf,
               IVSHMEM_VENDOR, IVSHMEM_DEVICE, (long long)st.st_size, (int32_t)regs[IVPOSITION]);
    } else if (!strcmp(cmd, "ring")) {
        uint32_t peer = number(argv[1], 0xffff), vec = number(argv[2], 0xffff);
        regs[DOORBELL] = peer << 16 | vec;
    } else {                                    /* wait-status MS */
        unsigned long ms = number(argv[1], 86400000UL);
        struct timespec now, end, tick = { 0, 1000000 };
        clock_gettime(CLOCK_MONOTONIC, &end);
        end.tv_sec += ms / 1000;
        end.tv_nsec += (ms % 1000) * 1000000L;
        if (end.tv_nsec >= 1000000000L) {
            end.tv_sec++;
            end.tv_nsec -= 1000000000L;
        }
        for (;;) {
            uint32_t status = regs[INTRSTATUS];  /* clear-on-read */
            if (status) {
                printf("status=%u\n", status);
                return fflush(stdout) ? 2 : 0;
            }
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
                break;
            nanosleep(&tick, NULL);
        }
        printf("status=0\n");
        fflush(stdout);
        return 1;
    }
    return fflush(stdout) ? 2 : 0;
}
