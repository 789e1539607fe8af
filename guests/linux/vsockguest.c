/*
 * vsockguest: /init (PID 1) of the vsock test and bench initramfs, for the
 * Linux test kernel. Static, so the initramfs needs no libc.
 *
 * vg_mode=serve (the default; kernel command line, so init's environment):
 * AF_VSOCK stream servers on any CID,
 *   5000  echo: everything read is written back; many connections at once
 *         (one poll loop, a connection whose echo cannot be written yet is
 *         not read further)
 *   5001  sink: accepts and never reads nor closes (a guest that never reads)
 *   5002  abrupt: reads up to 4096 bytes, then closes with the peer still
 *         sending
 *   5003  commands, one line each, any number per connection:
 * vg_mode=serial: the same commands on the virtio-serial port named "bench"
 * (QEMU's virtserialport), for comparing with QEMU, which has no vsock here.
 *
 * Commands (replies are lines too):
 *   RECV <n>        reads n bytes; "RECV <n> <fnv1a-64 hex>", or, when the
 *                   peer ends early, "VSOCKGUEST recv-short <got> <n>" on the
 *                   console
 *   SEND <n>        writes n bytes of the stream (xorshift64 from the seed
 *                   0x9e3779b97f4a7c15, each state little-endian); a failed
 *                   write: "VSOCKGUEST send-error <errno> <sent>" on the console
 *   ECHO <k> <size> k round trips: reads size bytes, writes them back
 *   DIAL <port>     (vsock only) connects to the host (CID 2) port, sends
 *                   "hello <port>\n", reads one line; "DIAL <port> OK <line>"
 *                   or "DIAL <port> ERR <errno name>"
 *   FLOOD <port>    (vsock only) connects to the host port and writes the
 *                   stream until a write fails; "FLOOD <port> ERR <errno name>
 *                   <bytes>" (or "FLOOD <port> CONNECT <errno name>")
 *   REBOOT          reboot(RB_AUTOBOOT): reboot=k makes it the VMM's exit
 * Anything else: "ERR <line>". Console markers: VSOCKGUEST-READY (serving),
 * VSOCKGUEST-ERROR <what>: <errno text> (then it reboots).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define PORT_ECHO 5000
#define PORT_SINK 5001
#define PORT_ABRUPT 5002
#define PORT_COMMAND 5003
#define ABRUPT_BYTES 4096
#define MAX_ECHO 256
#define MAX_SINK 256
#define ECHO_BUF 65536
#define IO_BUF (256 * 1024)
#define STREAM_SEED 0x9e3779b97f4a7c15ull

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!write(1, line, (size_t)(n < (int)sizeof(line) ? n : (int)sizeof(line) - 1));
}

static void die(const char *what)
{
    say("VSOCKGUEST-ERROR %s: %s\n", what, strerror(errno));
    reboot(RB_AUTOBOOT);
    _exit(1);
}

static const char *errname(int e)
{
    const char *n = strerrorname_np(e);
    return n ? n : "unknown";
}

/* A stream with a read buffer, so command lines and the data after them come in few reads. */
struct conn {
    int fd;
    size_t off, len;
    char buf[IO_BUF];
};

static struct conn the_conn;

/* Fills the buffer once: bytes read, 0 at end of stream, -1 on error. */
static ssize_t fill(struct conn *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->buf, sizeof(c->buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) {
            c->off = 0;
            c->len = (size_t)n;
        }
        return n;
    }
}

/* One line without its newline; -1 at end of stream, error, or a line longer than max. */
static int read_line(struct conn *c, char *line, size_t max)
{
    size_t n = 0;
    for (;;) {
        if (c->off == c->len && fill(c) <= 0)
            return -1;
        char ch = c->buf[c->off++];
        if (ch == '\n') {
            line[n] = 0;
            return 0;
        }
        if (n + 1 >= max)
            return -1;
        line[n++] = ch;
    }
}

static int write_all(int fd, const void *p, size_t len)
{
    const char *b = p;
    while (len > 0) {
        ssize_t n = write(fd, b, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

static void reply(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct conn *c, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)write_all(c->fd, line, (size_t)(n < (int)sizeof(line) ? n : (int)sizeof(line) - 1));
}

static void do_recv(struct conn *c, unsigned long long n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    unsigned long long got = 0;
    while (got < n) {
        if (c->off == c->len && fill(c) <= 0) {
            say("VSOCKGUEST recv-short %llu %llu\n", got, n);
            return;
        }
        size_t take = c->len - c->off;
        if (take > n - got)
            take = (size_t)(n - got);
        const unsigned char *p = (const unsigned char *)c->buf + c->off;
        for (size_t i = 0; i < take; i++)
            h = (h ^ p[i]) * 0x100000001b3ull;
        c->off += take;
        got += take;
    }
    reply(c, "RECV %llu %016llx\n", n, (unsigned long long)h);
}

/* The next len bytes (a multiple of 8) of the stream whose state is *x. */
static void stream(uint64_t *x, unsigned char *out, size_t len)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = *x;
        for (int b = 0; b < 8; b++)
            out[i + b] = (unsigned char)(v >> (8 * b));
        v ^= v << 13;
        v ^= v >> 7;
        v ^= v << 17;
        *x = v;
    }
}

static unsigned char send_buf[65536];

/* Writes n bytes of the stream (or until a write fails: -1 with errno); *sent counts. */
static int send_stream(int fd, unsigned long long n, unsigned long long *sent)
{
    uint64_t x = STREAM_SEED;
    *sent = 0;
    while (*sent < n) {
        stream(&x, send_buf, sizeof(send_buf));
        size_t len = sizeof(send_buf);
        if (len > n - *sent)
            len = (size_t)(n - *sent);
        size_t done = 0;
        while (done < len) {
            ssize_t w = write(fd, send_buf + done, len - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return -1;
            done += (size_t)w;
            *sent += (unsigned long long)w;
        }
    }
    return 0;
}

static void do_echo(struct conn *c, unsigned long k, size_t size)
{
    static char msg[65536];
    if (size == 0 || size > sizeof(msg)) {
        reply(c, "ERR echo size %zu\n", size);
        return;
    }
    for (unsigned long r = 0; r < k; r++) {
        size_t got = 0;
        while (got < size) {
            if (c->off == c->len && fill(c) <= 0)
                return;
            size_t take = c->len - c->off;
            if (take > size - got)
                take = size - got;
            memcpy(msg + got, c->buf + c->off, take);
            c->off += take;
            got += take;
        }
        if (write_all(c->fd, msg, size) != 0)
            return;
    }
}

static int dial(int port)
{
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval t = {.tv_sec = 30};
    (void)setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &t, sizeof(t));
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = (unsigned)port};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void do_dial(struct conn *c, int port)
{
    int fd = dial(port);
    if (fd < 0) {
        reply(c, "DIAL %d ERR %s\n", port, errname(errno));
        return;
    }
    char hello[64], line[128];
    int n = snprintf(hello, sizeof(hello), "hello %d\n", port);
    size_t got = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (write_all(fd, hello, (size_t)n) != 0) {
        reply(c, "DIAL %d ERR %s\n", port, errname(errno));
        close(fd);
        return;
    }
    while (got + 1 < sizeof(line)) {
        if (poll(&p, 1, 60000) <= 0) {
            errno = ETIMEDOUT;
            break;
        }
        ssize_t r = read(fd, line + got, 1);
        if (r <= 0) {
            if (r == 0)
                errno = ECONNRESET;
            break;
        }
        if (line[got] == '\n') {
            line[got] = 0;
            reply(c, "DIAL %d OK %s\n", port, line);
            close(fd);
            return;
        }
        got++;
    }
    reply(c, "DIAL %d ERR %s\n", port, errname(errno));
    close(fd);
}

static void do_flood(struct conn *c, int port)
{
    int fd = dial(port);
    if (fd < 0) {
        reply(c, "FLOOD %d CONNECT %s\n", port, errname(errno));
        return;
    }
    unsigned long long sent;
    if (send_stream(fd, ~0ull, &sent) != 0)
        reply(c, "FLOOD %d ERR %s %llu\n", port, errname(errno), sent);
    close(fd);
}

/* Runs commands from c until its end of stream. */
static void commands(struct conn *c, int vsock)
{
    char line[128];
    while (read_line(c, line, sizeof(line)) == 0) {
        unsigned long long n;
        unsigned long k;
        size_t size;
        int port;
        if (sscanf(line, "RECV %llu", &n) == 1) {
            do_recv(c, n);
        } else if (sscanf(line, "SEND %llu", &n) == 1) {
            unsigned long long sent;
            if (send_stream(c->fd, n, &sent) != 0) {
                say("VSOCKGUEST send-error %s %llu\n", errname(errno), sent);
                return;
            }
        } else if (sscanf(line, "ECHO %lu %zu", &k, &size) == 2) {
            do_echo(c, k, size);
        } else if (vsock && sscanf(line, "DIAL %d", &port) == 1) {
            do_dial(c, port);
        } else if (vsock && sscanf(line, "FLOOD %d", &port) == 1) {
            do_flood(c, port);
        } else if (strcmp(line, "REBOOT") == 0) {
            say("VSOCKGUEST-REBOOT\n");
            reboot(RB_AUTOBOOT);
            _exit(0);
        } else {
            reply(c, "ERR %s\n", line);
        }
    }
}

static int listen_on(int port)
{
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket(AF_VSOCK)");
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = (unsigned)port};
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("bind");
    if (listen(fd, 128) != 0)
        die("listen");
    return fd;
}

static int accept_one(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0 || (errno != EINTR && errno != ECONNABORTED && errno != ECONNRESET))
            return fd;
    }
}

struct echo {
    int fd;
    size_t off, len;
    char buf[ECHO_BUF];
};

static struct echo echoes[MAX_ECHO];

static void serve_echo(int lfd)
{
    static struct pollfd p[MAX_ECHO + 1];
    for (int i = 0; i < MAX_ECHO; i++)
        echoes[i].fd = -1;
    for (;;) {
        int map[MAX_ECHO], n = 1;
        p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < MAX_ECHO; i++) {
            if (echoes[i].fd < 0)
                continue;
            p[n] = (struct pollfd){.fd = echoes[i].fd, .events = echoes[i].len > echoes[i].off ? POLLOUT : POLLIN};
            map[n - 1] = i;
            n++;
        }
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        for (int j = 1; j < n; j++) {
            struct echo *e = &echoes[map[j - 1]];
            if (p[j].revents == 0)
                continue;
            ssize_t r;
            if (e->len > e->off) {
                r = write(e->fd, e->buf + e->off, e->len - e->off);
                if (r > 0)
                    e->off += (size_t)r;
            } else {
                r = read(e->fd, e->buf, sizeof(e->buf));
                if (r > 0) {
                    e->off = 0;
                    e->len = (size_t)r;
                }
            }
            if (r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR))) {
                close(e->fd);
                e->fd = -1;
                e->off = e->len = 0;
            }
        }
        if (p[0].revents & POLLIN) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0)
                continue;
            int i = 0;
            while (i < MAX_ECHO && echoes[i].fd >= 0)
                i++;
            if (i == MAX_ECHO) {
                close(fd);
                continue;
            }
            echoes[i].fd = fd;
            echoes[i].off = echoes[i].len = 0;
        }
    }
}

static void serve_sink(int lfd)
{
    int kept = 0;
    for (;;) {
        int fd = accept_one(lfd);
        if (fd < 0)
            die("accept sink");
        if (kept < MAX_SINK)
            kept++; /* held open, never read */
        else
            close(fd);
    }
}

static void serve_abrupt(int lfd)
{
    static char buf[ABRUPT_BYTES];
    for (;;) {
        int fd = accept_one(lfd);
        if (fd < 0)
            die("accept abrupt");
        size_t got = 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        while (got < sizeof(buf) && poll(&p, 1, 60000) > 0) {
            ssize_t r = read(fd, buf + got, sizeof(buf) - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        say("VSOCKGUEST abrupt-close %zu\n", got);
        close(fd);
    }
}

static void serve_commands(int lfd)
{
    for (;;) {
        int fd = accept_one(lfd);
        if (fd < 0)
            die("accept commands");
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            close(lfd);
            the_conn.fd = fd;
            the_conn.off = the_conn.len = 0;
            commands(&the_conn, 1);
            _exit(0);
        }
        close(fd);
    }
}

static void start(void (*serve)(int), int lfd)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        serve(lfd);
        _exit(0);
    }
    close(lfd);
}

/* The /dev node of the virtio-serial port named name, from /sys/class/virtio-ports/<node>/name. */
static int open_port(const char *name, char *dev, size_t size)
{
    DIR *d = opendir("/sys/class/virtio-ports");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], got[64] = {0};
        snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, got, sizeof(got) - 1);
        close(fd);
        if (n > 0 && got[n - 1] == '\n')
            got[n - 1] = 0;
        if (strcmp(got, name) == 0) {
            snprintf(dev, size, "/dev/%s", e->d_name);
            closedir(d);
            return open(dev, O_RDWR | O_CLOEXEC);
        }
    }
    closedir(d);
    errno = ENOENT;
    return -1;
}

static void serial(void)
{
    char dev[300];
    if (mount("sysfs", "/sys", "sysfs", 0, NULL) != 0 && errno != EBUSY)
        die("mount sysfs");
    int fd = open_port("bench", dev, sizeof(dev));
    if (fd < 0)
        die("open the virtio-serial port named bench");
    say("VSOCKGUEST-READY serial %s\n", dev);
    the_conn.fd = fd;
    /* Reads give end of stream until the host connects, and after it leaves. */
    for (int i = 0; i < 60000; i++) {
        the_conn.off = the_conn.len = 0;
        commands(&the_conn, 0);
        struct timespec t = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&t, NULL);
    }
    errno = ETIMEDOUT;
    die("serial: no host");
}

int main(void)
{
    const char *mode = getenv("vg_mode");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) != 0 && errno != EBUSY)
        die("mount devtmpfs");
    if (mode && strcmp(mode, "serial") == 0)
        serial();
    if (mode && strcmp(mode, "serve") != 0) {
        errno = EINVAL;
        die("vg_mode is neither serve nor serial");
    }
    int echo = listen_on(PORT_ECHO), sink = listen_on(PORT_SINK), abrupt = listen_on(PORT_ABRUPT);
    int command = listen_on(PORT_COMMAND);
    start(serve_echo, echo);
    start(serve_sink, sink);
    start(serve_abrupt, abrupt);
    say("VSOCKGUEST-READY vsock %d %d %d %d\n", PORT_ECHO, PORT_SINK, PORT_ABRUPT, PORT_COMMAND);
    serve_commands(command);
    return 0;
}
