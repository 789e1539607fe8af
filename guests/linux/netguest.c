/*
 * netguest: TCP over virtio-net, for Kindling's network tests and `kindling bench net`.
 *
 * As /init (PID 1) of a test initramfs it mounts /proc, reads its parameters
 * from /proc/cmdline, configures the interfaces with ioctls, runs its jobs in
 * order and reboots (reboot=k on the command line: the VMM sees an exit).
 * Run on the host with the same words as arguments it runs the jobs and
 * exits (0 when all succeeded): the peer inside a test's network namespace.
 *
 * Words:
 *   ng.if=IF,ADDR/PREFIX   bring IF (a name, or the interface with that MAC
 *                          address, aa:bb:cc:dd:ee:ff) up with that IPv4 address (repeatable)
 *   ng.job=MODE,ADDR:PORT,BYTES[,LABEL]   (repeatable, run in order)
 *     echo   connect, send BYTES of the pattern, read the echo back and compare;
 *            it shuts down writing once all is sent, while the echo still comes
 *     echowait   the same, but shuts down writing only once the whole echo is
 *            back: passt 2023-03 sends stale bytes to a guest that half-closed
 *            while data still came to it (see PasstBackend), so its tests use this
 *     send   connect, send BYTES, shut down writing, read the peer's sum line
 *     serve  listen, accept one connection, echo it until the peer shuts down
 *     sink   listen, accept one connection, read to end, answer with the sum line
 *   ng.wait=SECONDS   how long a job may take, connecting included (default 600)
 * Clients retry a refused or unreachable connect until the job's time is up:
 * the peer may still be starting. Each job runs in a child process, so one
 * that fails does not keep the others from running.
 *
 * Output, one line each:
 *   NETGUEST-OK <label> <mode> <bytes> <sum> <ns>   (ns: first byte to last)
 *   NETGUEST-ERROR <label> <what>: <errno text>
 *   NETGUEST-LISTENING <label>   (on the host only: the server is ready)
 *   NETGUEST-DONE <failed jobs>
 * The sum is 64-bit FNV-1a over the bytes, in hex. The pattern's byte i is
 * ((i ^ (i >> 8) ^ (i >> 16)) * 13 + 7) mod 256. The sum line is
 * "NGSUM <bytes> <sum>\n".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORDS 64
#define MAX_JOBS 8
#define CHUNK 65536
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

/* PID 1 reboots at the end instead of exiting; in_guest is also true in its children. */
static int is_init, in_guest;

struct job {
    char mode[12];
    struct sockaddr_in addr;
    long long bytes;
    char label[32];
};

static void out(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(1, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void finish(int ok)
{
    if (is_init) {
        sync();
        reboot(RB_AUTOBOOT);
    }
    _exit(ok ? 0 : 1);
}

static void fail(const char *label, const char *what)
{
    char line[256];
    snprintf(line, sizeof(line), "NETGUEST-ERROR %s %s: %s\n", label, what, strerror(errno));
    out(line);
    finish(0);
}

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static uint8_t pattern(uint64_t i)
{
    return (uint8_t)((i ^ (i >> 8) ^ (i >> 16)) * 13 + 7);
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

static void fill(uint8_t *buf, uint64_t from, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern(from + i);
}

/* "A.B.C.D:PORT" */
static int parse_addr(const char *s, struct sockaddr_in *a)
{
    char host[32];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    long port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return -1;
    a->sin_port = htons((uint16_t)port);
    return 0;
}

static void set_ifaddr(int s, const char *name, unsigned long req, uint32_t addr, const char *what)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = addr;
    if (ioctl(s, req, &ifr) != 0)
        fail(name, what);
}

static void link_up(int s, const char *name)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
        fail(name, "SIOCGIFFLAGS");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
        fail(name, "SIOCSIFFLAGS");
}

/* The name of the interface whose hardware address is mac; fails if there is none. */
static void name_by_mac(int s, const char *mac, char *name)
{
    unsigned int m[6];
    errno = EINVAL;
    if (sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
        fail(mac, "ng.if");
    struct if_nameindex *all = if_nameindex();
    if (!all)
        fail(mac, "if_nameindex");
    for (struct if_nameindex *i = all; i->if_index != 0; i++) {
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        snprintf(ifr.ifr_name, IFNAMSIZ, "%s", i->if_name);
        if (ioctl(s, SIOCGIFHWADDR, &ifr) != 0)
            continue;
        int same = 1;
        for (int b = 0; b < 6; b++)
            same &= (uint8_t)ifr.ifr_hwaddr.sa_data[b] == m[b];
        if (same) {
            snprintf(name, IFNAMSIZ, "%s", i->if_name);
            if_freenameindex(all);
            return;
        }
    }
    errno = ENODEV;
    fail(mac, "no interface with that MAC address");
}

/* "eth0,10.0.2.15/24" or "52:54:00:12:34:56,10.0.2.15/24": address, netmask, up. */
static void configure(const char *spec)
{
    char name[IFNAMSIZ], ip[32], id[32];
    const char *comma = strchr(spec, ','), *slash = strchr(spec, '/');
    errno = EINVAL;
    if (!comma || !slash || slash < comma || (size_t)(comma - spec) >= sizeof(id)
            || (size_t)(slash - comma - 1) >= sizeof(ip))
        fail(spec, "ng.if");
    memcpy(id, spec, (size_t)(comma - spec));
    id[comma - spec] = 0;
    memcpy(ip, comma + 1, (size_t)(slash - comma - 1));
    ip[slash - comma - 1] = 0;
    long prefix = strtol(slash + 1, NULL, 10);
    struct in_addr a;
    if (prefix < 1 || prefix > 32 || inet_pton(AF_INET, ip, &a) != 1)
        fail(spec, "ng.if");
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0)
        fail(id, "socket");
    if (strchr(id, ':'))
        name_by_mac(s, id, name);
    else if (strlen(id) < IFNAMSIZ)
        snprintf(name, IFNAMSIZ, "%s", id);
    else
        fail(spec, "ng.if");
    set_ifaddr(s, name, SIOCSIFADDR, a.s_addr, "SIOCSIFADDR");
    set_ifaddr(s, name, SIOCSIFNETMASK, htonl(0xffffffffu << (32 - prefix)), "SIOCSIFNETMASK");
    link_up(s, name);
    close(s);
}

static void bound(int fd, int seconds)
{
    struct timeval tv = {.tv_sec = seconds};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int connect_until(struct job *j, long long deadline)
{
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            fail(j->label, "socket");
        if (connect(fd, (struct sockaddr *)&j->addr, sizeof(j->addr)) == 0)
            return fd;
        int e = errno;
        close(fd);
        errno = e;
        if ((e != ECONNREFUSED && e != EHOSTUNREACH && e != ENETUNREACH && e != ETIMEDOUT) || now_ns() > deadline)
            fail(j->label, "connect");
        struct timespec pause = {0, 200 * 1000000L};
        nanosleep(&pause, NULL);
    }
}

static int accept_until(struct job *j, long long deadline)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (ls < 0)
        fail(j->label, "socket");
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(ls, (struct sockaddr *)&j->addr, sizeof(j->addr)) != 0)
        fail(j->label, "bind");
    if (listen(ls, 1) != 0)
        fail(j->label, "listen");
    if (!in_guest) {
        /* a host peer says when it listens, so the test need not poll for it */
        char line[96];
        snprintf(line, sizeof(line), "NETGUEST-LISTENING %s\n", j->label);
        out(line);
    }
    struct pollfd p = {.fd = ls, .events = POLLIN};
    long long left = (deadline - now_ns()) / 1000000;
    int r = left > 0 ? poll(&p, 1, (int)(left > 0x7fffffff ? 0x7fffffff : left)) : 0;
    if (r <= 0) {
        if (r == 0)
            errno = ETIMEDOUT;
        fail(j->label, "accept");
    }
    int fd = accept(ls, NULL, NULL);
    if (fd < 0)
        fail(j->label, "accept");
    close(ls);
    return fd;
}

static void report(struct job *j, long long bytes, uint64_t sum, long long ns)
{
    char line[160];
    snprintf(line, sizeof(line), "NETGUEST-OK %s %s %lld %016llx %lld\n", j->label, j->mode, bytes,
             (unsigned long long)sum, ns);
    out(line);
}

/*
 * Sends the pattern and reads the echo at once, so neither side's buffers fill and stall both.
 * Writing is shut down when all is sent, or with late once the whole echo is back.
 */
static void run_echo(struct job *j, int fd, int seconds, int late, uint8_t *tx, uint8_t *rx)
{
    long long sent = 0, got = 0, t0 = now_ns();
    uint64_t sum = FNV_OFFSET;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    while (got < j->bytes) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < j->bytes ? POLLOUT : 0)};
        int r = poll(&p, 1, seconds * 1000);
        if (r <= 0) {
            if (r == 0)
                errno = ETIMEDOUT;
            fail(j->label, "echo poll");
        }
        if (sent < j->bytes && (p.revents & POLLOUT)) {
            size_t n = (size_t)(j->bytes - sent < CHUNK ? j->bytes - sent : CHUNK);
            fill(tx, (uint64_t)sent, n);
            ssize_t w = send(fd, tx, n, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN)
                fail(j->label, "echo send");
            if (w > 0)
                sent += w;
            if (sent == j->bytes && !late)
                shutdown(fd, SHUT_WR);
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, rx, CHUNK, 0);
            if (n < 0 && errno != EAGAIN)
                fail(j->label, "echo recv");
            if (n == 0) {
                errno = EPIPE;
                fail(j->label, "echo ended early");
            }
            for (ssize_t i = 0; i < n; i++) {
                if (rx[i] != pattern((uint64_t)(got + i))) {
                    errno = EILSEQ;
                    fail(j->label, "echo differs");
                }
            }
            if (n > 0) {
                sum = fnv(sum, rx, (size_t)n);
                got += n;
            }
        }
    }
    if (late)
        shutdown(fd, SHUT_WR);
    report(j, got, sum, now_ns() - t0);
}

static void run_send(struct job *j, int fd, uint8_t *tx, uint8_t *rx)
{
    long long sent = 0, t0 = now_ns();
    uint64_t sum = FNV_OFFSET;
    while (sent < j->bytes) {
        size_t n = (size_t)(j->bytes - sent < CHUNK ? j->bytes - sent : CHUNK);
        fill(tx, (uint64_t)sent, n);
        sum = fnv(sum, tx, n);
        for (size_t off = 0; off < n;) {
            ssize_t w = send(fd, tx + off, n - off, MSG_NOSIGNAL);
            if (w <= 0)
                fail(j->label, "send");
            off += (size_t)w;
        }
        sent += (long long)n;
    }
    shutdown(fd, SHUT_WR);
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(fd, rx + have, 127 - have, 0);
        if (n < 0)
            fail(j->label, "sum recv");
        if (n == 0)
            break;
        have += (size_t)n;
        if (have >= 127)
            break;
    }
    long long ns = now_ns() - t0;
    rx[have] = 0;
    unsigned long long peer_bytes = 0, peer_sum = 0;
    if (sscanf((char *)rx, "NGSUM %llu %llx", &peer_bytes, &peer_sum) != 2 || peer_bytes != (unsigned long long)sent
            || peer_sum != sum) {
        errno = EILSEQ;
        fail(j->label, "peer's sum differs");
    }
    report(j, sent, sum, ns);
}

/* serve: echo; sink: count. Both until the peer shuts down its side. */
static void run_server(struct job *j, int fd, int echo, uint8_t *rx)
{
    long long got = 0, t0 = 0;
    uint64_t sum = FNV_OFFSET;
    for (;;) {
        ssize_t n = recv(fd, rx, CHUNK, 0);
        if (n < 0)
            fail(j->label, "recv");
        if (n == 0)
            break;
        if (got == 0)
            t0 = now_ns();
        sum = fnv(sum, rx, (size_t)n);
        got += n;
        if (got > j->bytes) {
            errno = EMSGSIZE;
            fail(j->label, "more than expected");
        }
        for (ssize_t off = 0; echo && off < n;) {
            ssize_t w = send(fd, rx + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w <= 0)
                fail(j->label, "send");
            off += w;
        }
    }
    long long ns = t0 ? now_ns() - t0 : 0;
    if (!echo) {
        char line[96];
        int len = snprintf(line, sizeof(line), "NGSUM %lld %016llx\n", got, (unsigned long long)sum);
        if (send(fd, line, (size_t)len, MSG_NOSIGNAL) != len)
            fail(j->label, "sum send");
    }
    shutdown(fd, SHUT_WR);
    /* the client closes after the sum line or the last echo: wait for that, bounded by the socket timeout */
    while (recv(fd, rx, CHUNK, 0) > 0) {
    }
    report(j, got, sum, ns);
}

static void run(struct job *j, int seconds, uint8_t *tx, uint8_t *rx)
{
    long long deadline = now_ns() + seconds * 1000000000LL;
    int server = !strcmp(j->mode, "serve") || !strcmp(j->mode, "sink");
    int fd = server ? accept_until(j, deadline) : connect_until(j, deadline);
    bound(fd, seconds);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!strcmp(j->mode, "echo") || !strcmp(j->mode, "echowait"))
        run_echo(j, fd, seconds, !strcmp(j->mode, "echowait"), tx, rx);
    else if (!strcmp(j->mode, "send"))
        run_send(j, fd, tx, rx);
    else
        run_server(j, fd, !strcmp(j->mode, "serve"), rx);
    close(fd);
}

/* "MODE,ADDR:PORT,BYTES[,LABEL]" */
static void parse_job(const char *spec, struct job *j)
{
    char addr[64];
    memset(j, 0, sizeof(*j));
    const char *c1 = strchr(spec, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
    errno = EINVAL;
    if (!c1 || !c2 || (size_t)(c1 - spec) >= sizeof(j->mode) || (size_t)(c2 - c1 - 1) >= sizeof(addr))
        fail(spec, "ng.job");
    memcpy(j->mode, spec, (size_t)(c1 - spec));
    memcpy(addr, c1 + 1, (size_t)(c2 - c1 - 1));
    addr[c2 - c1 - 1] = 0;
    char *end;
    j->bytes = strtoll(c2 + 1, &end, 10);
    if (*end == ',')
        snprintf(j->label, sizeof(j->label), "%s", end + 1);
    else if (*end == 0)
        memcpy(j->label, j->mode, sizeof(j->mode));
    else
        fail(spec, "ng.job");
    if (parse_addr(addr, &j->addr) != 0 || j->bytes < 1 || (strcmp(j->mode, "echo") && strcmp(j->mode, "echowait")
            && strcmp(j->mode, "send")
            && strcmp(j->mode, "serve") && strcmp(j->mode, "sink")))
        fail(spec, "ng.job");
}

int main(int argc, char **argv)
{
    static char cmdline[4096];
    static uint8_t tx[CHUNK], rx[CHUNK];
    char *words[MAX_WORDS];
    int nwords = 0;
    is_init = in_guest = getpid() == 1;
    if (is_init) {
        if (mount("proc", "/proc", "proc", 0, NULL) != 0 && errno != EBUSY)
            fail("init", "mount /proc");
        int fd = open("/proc/cmdline", O_RDONLY);
        if (fd < 0)
            fail("init", "open /proc/cmdline");
        ssize_t n = read(fd, cmdline, sizeof(cmdline) - 1);
        if (n < 0)
            fail("init", "read /proc/cmdline");
        close(fd);
        cmdline[n] = 0;
        for (char *save = NULL, *w = strtok_r(cmdline, " \n", &save); w && nwords < MAX_WORDS;
                w = strtok_r(NULL, " \n", &save))
            words[nwords++] = w;
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        if (s < 0)
            fail("lo", "socket");
        link_up(s, "lo");
        close(s);
    } else {
        for (int i = 1; i < argc && nwords < MAX_WORDS; i++)
            words[nwords++] = argv[i];
    }

    struct job jobs[MAX_JOBS];
    int njobs = 0, seconds = 600;
    for (int i = 0; i < nwords; i++) {
        if (!strncmp(words[i], "ng.if=", 6)) {
            configure(words[i] + 6);
        } else if (!strncmp(words[i], "ng.job=", 7)) {
            errno = E2BIG;
            if (njobs == MAX_JOBS)
                fail(words[i], "too many jobs");
            parse_job(words[i] + 7, &jobs[njobs++]);
        } else if (!strncmp(words[i], "ng.wait=", 8)) {
            seconds = atoi(words[i] + 8);
            errno = EINVAL;
            if (seconds < 1)
                fail(words[i], "ng.wait");
        }
    }
    int failed = 0;
    for (int i = 0; i < njobs; i++) {
        pid_t child = fork();
        if (child < 0)
            fail(jobs[i].label, "fork");
        if (child == 0) {
            is_init = 0;
            run(&jobs[i], seconds, tx, rx);
            _exit(0);
        }
        int status;
        if (waitpid(child, &status, 0) != child)
            fail(jobs[i].label, "waitpid");
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    char line[48];
    snprintf(line, sizeof(line), "NETGUEST-DONE %d\n", failed);
    out(line);
    finish(failed == 0);
    return 0;
}
