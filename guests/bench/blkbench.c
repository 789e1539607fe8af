/*
 * blkbench: the in-guest half of `kindling bench blk`. Runs as /init (PID 1)
 * of a bench-only initramfs, measures /dev/vda with O_DIRECT (so the guest's
 * page cache does not stand in for the device) and prints one line per
 * measurement on the console:
 *   BLKBENCH seq-write <round> <bytes> <ns>
 *   BLKBENCH seq-read <round> <bytes> <ns>
 *   BLKBENCH randread-4k <round> <requests> <ns>
 *   BLKBENCH-DONE
 * or "BLKBENCH-ERROR <what>: <errno text>", then reboots (reboot=k on the
 * command line: 0xfe to port 0x64, which ends both VMMs).
 * Parameters from the kernel command line (init's environment):
 *   bb_mib=N      MiB of the sequential passes, from sector 0 (default 2)
 *   bb_block=N    KiB per sequential request (default 256)
 *   bb_ops=N      random 4 KiB reads per round, anywhere in those bb_mib (default 32)
 *   bb_rounds=N   rounds (default 3)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

static void say(const char *fmt, long long a, long long b, long long c)
{
    char line[160];
    int n = snprintf(line, sizeof(line), fmt, a, b, c);
    if (n > 0)
        (void)!write(1, line, (size_t)n);
}

static void fail(const char *what)
{
    char line[160];
    int n = snprintf(line, sizeof(line), "BLKBENCH-ERROR %s: %s\n", what, strerror(errno));
    if (n > 0)
        (void)!write(1, line, (size_t)n);
    sync();
    reboot(RB_AUTOBOOT);
    _exit(1);
}

static long long param(const char *name, long long fallback)
{
    const char *v = getenv(name);
    long long x = v ? atoll(v) : 0;
    return x > 0 ? x : fallback;
}

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The whole transfer, retrying short ones; -1 on error. */
static int transfer(int fd, int writing, char *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = writing ? pwrite(fd, buf, len, off) : pread(fd, buf, len, off);
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

int main(void)
{
    long long mib = param("bb_mib", 2), block = param("bb_block", 256) << 10;
    long long ops = param("bb_ops", 32), rounds = param("bb_rounds", 3);
    long long bytes = mib << 20;
    char *buf;
    uint64_t size = 0;

    if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) != 0 && errno != EBUSY)
        fail("mount devtmpfs");
    int fd = open("/dev/vda", O_RDWR | O_DIRECT);
    if (fd < 0)
        fail("open /dev/vda");
    if (ioctl(fd, BLKGETSIZE64, &size) != 0)
        fail("BLKGETSIZE64");
    if ((uint64_t)bytes > size) {
        errno = ENOSPC;
        fail("disk smaller than bb_mib");
    }
    if (posix_memalign((void **)&buf, 4096, (size_t)block) != 0)
        fail("posix_memalign");
    for (long long i = 0; i < block; i++)
        buf[i] = (char)(i * 7);

    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (long long r = 1; r <= rounds; r++) {
        long long t0 = now_ns();
        for (long long off = 0; off < bytes; off += block)
            if (transfer(fd, 1, buf, (size_t)block, off) != 0)
                fail("seq-write");
        say("BLKBENCH seq-write %lld %lld %lld\n", r, bytes, now_ns() - t0);

        t0 = now_ns();
        for (long long off = 0; off < bytes; off += block)
            if (transfer(fd, 0, buf, (size_t)block, off) != 0)
                fail("seq-read");
        say("BLKBENCH seq-read %lld %lld %lld\n", r, bytes, now_ns() - t0);

        t0 = now_ns();
        for (long long i = 0; i < ops; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;        /* xorshift64 */
            off_t off = (off_t)(x % (uint64_t)(bytes >> 12)) << 12;
            if (transfer(fd, 0, buf, 4096, off) != 0)
                fail("randread-4k");
        }
        say("BLKBENCH randread-4k %lld %lld %lld\n", r, ops, now_ns() - t0);
    }
    (void)!write(1, "BLKBENCH-DONE\n", 14);
    close(fd);
    sync();
    reboot(RB_AUTOBOOT);
    return 0;
}
