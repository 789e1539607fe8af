/*
 * kindling-agent: the Kindling guest agent, protocol version 1 (docs/agent-protocol.md).
 *
 * Listens on vsock stream port 52 and serves each connection in a process of its own (fork after
 * accept), so a session that goes wrong ends only itself. As PID 1 it mounts /proc, /sys and /dev
 * where they are missing and reaps every orphan (SIGCHLD ignored: the kernel reaps them).
 *
 * Build: gcc -static -Os -s -o kindling-agent agent.c (glibc, no other dependency).
 * Usage: kindling-agent                 vsock port 52
 *        kindling-agent --unix PATH     a Unix socket instead (to try the protocol on a host)
 *
 * Cost model: where KVM emulates guest kernel code every system call costs ~0.4 ms, so processes
 * are started with posix_spawn (vfork-like) and I/O moves in large chunks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define VERSION 1
#define PORT 52
#define MAX_BODY (1u << 20)
#define MAX_PING 64
#define DRAIN_IDLE_MS 200

enum {
    T_HELLO = 1, T_ERROR = 2, T_PING = 3, T_PONG = 4,
    T_EXEC = 16, T_STARTED = 17, T_STDIN = 18, T_STDOUT = 19, T_STDERR = 20, T_SIGNAL = 21, T_EXIT = 22,
    T_PUT = 32, T_DATA = 33, T_OK = 34, T_GET = 35, T_FILE = 36,
};

extern char **environ;

/* One session (one connection, one process). */
struct session {
    int sock;
    uint8_t *buf;      /* 8-byte header room + MAX_BODY: frames in and out */
    uint32_t len;      /* body length of the frame last read */
    uint16_t type;
    pid_t child;       /* exec'd process group, 0 if none */
    char *tmp;         /* PUT's temporary file, removed on failure */
};

static int write_full(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* 1: read all n bytes; 0: end of file before any byte; -1: error or end of file within. */
static int read_full(int fd, void *p, size_t n) {
    uint8_t *b = p;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) return got == 0 ? 0 : -1;
        got += (size_t)r;
    }
    return 1;
}

static void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void header(uint8_t *h, uint16_t type, uint32_t len) {
    put_u32(h, len);
    put_u16(h + 4, type);
    put_u16(h + 6, 0);
}

/* Ends the session: kills its process group, removes a half-written PUT file. */
static _Noreturn void finish(struct session *s) {
    if (s->child > 0) kill(-s->child, SIGKILL);
    if (s->tmp) unlink(s->tmp);
    _exit(0);
}

/* Sends a frame whose body is already at s->buf + 8; the host gone ends the session. */
static void send_buf(struct session *s, uint16_t type, uint32_t len) {
    header(s->buf, type, len);
    if (write_full(s->sock, s->buf, 8 + (size_t)len) < 0) finish(s);
}

static void send_small(struct session *s, uint16_t type, const void *body, uint32_t len) {
    uint8_t f[8 + 256];
    header(f, type, len);
    memcpy(f + 8, body, len);
    if (write_full(s->sock, f, 8 + (size_t)len) < 0) finish(s);
}

/* ERROR with errno e and a message, then the end of the session. */
static _Noreturn void fail(struct session *s, int e, const char *fmt, ...) {
    uint8_t body[8 + 200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf((char *)body + 8, 200, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if (n > 199) n = 199;
    put_u32(body, (uint32_t)e);
    put_u32(body + 4, (uint32_t)n);
    send_small(s, T_ERROR, body, 8 + (uint32_t)n);
    if (s->child > 0) kill(-s->child, SIGKILL);
    s->child = 0;
    /* Closing with unread bytes could reset the connection and lose the ERROR: end our side, then
     * read what the host still sends until it closes (for a few seconds at most). */
    shutdown(s->sock, SHUT_WR);
    for (int i = 0; i < 20; i++) {
        struct pollfd p = {s->sock, POLLIN, 0};
        if (poll(&p, 1, 200) == 0) break;
        if (read(s->sock, s->buf, 8 + (size_t)MAX_BODY) <= 0) break;
    }
    finish(s);
}

/*
 * Reads one frame into s (header checks included). Returns 0 at end of file before a frame; a
 * partial frame or an error also ends the session.
 */
static int read_frame(struct session *s) {
    uint8_t h[8];
    int r = read_full(s->sock, h, 8);
    if (r <= 0) {
        if (r == 0) return 0;
        finish(s);
    }
    uint32_t len = get_u32(h);
    uint16_t type = (uint16_t)(h[4] | h[5] << 8);
    uint16_t reserved = (uint16_t)(h[6] | h[7] << 8);
    if (len > MAX_BODY) fail(s, EPROTO, "frame length %u over %u", len, MAX_BODY);
    if (reserved != 0) fail(s, EPROTO, "reserved field %u, not 0", reserved);
    switch (type) {
    case T_HELLO: case T_ERROR: case T_PING: case T_PONG: case T_EXEC: case T_STARTED: case T_STDIN:
    case T_STDOUT: case T_STDERR: case T_SIGNAL: case T_EXIT: case T_PUT: case T_DATA: case T_OK:
    case T_GET: case T_FILE:
        break;
    default:
        fail(s, EPROTO, "unknown frame type %u", type);
    }
    if (len > 0 && read_full(s->sock, s->buf + 8, len) != 1) finish(s);
    s->len = len;
    s->type = type;
    return 1;
}

static const char *type_name(uint16_t t) {
    switch (t) {
    case T_HELLO: return "HELLO";     case T_ERROR: return "ERROR";     case T_PING: return "PING";
    case T_PONG: return "PONG";       case T_EXEC: return "EXEC";       case T_STARTED: return "STARTED";
    case T_STDIN: return "STDIN";     case T_STDOUT: return "STDOUT";   case T_STDERR: return "STDERR";
    case T_SIGNAL: return "SIGNAL";   case T_EXIT: return "EXIT";       case T_PUT: return "PUT";
    case T_DATA: return "DATA";       case T_OK: return "OK";           case T_GET: return "GET";
    case T_FILE: return "FILE";
    }
    return "?";
}

static _Noreturn void unexpected(struct session *s, const char *where) {
    fail(s, EPROTO, "%s not allowed %s", type_name(s->type), where);
}

/* A cursor over a frame body. */
struct body {
    struct session *s;
    const uint8_t *p;
    uint32_t left;
};

static struct body body_of(struct session *s) {
    return (struct body){s, s->buf + 8, s->len};
}

static uint32_t take_u32(struct body *b, const char *field) {
    if (b->left < 4) fail(b->s, EPROTO, "%s body too short for %s", type_name(b->s->type), field);
    uint32_t v = get_u32(b->p);
    b->p += 4;
    b->left -= 4;
    return v;
}

/* A string field; *len gets its byte count. */
static const char *take_str(struct body *b, const char *field, uint32_t *len) {
    uint32_t n = take_u32(b, field);
    if (n > b->left) fail(b->s, EPROTO, "%s string %s runs past the body", type_name(b->s->type), field);
    const char *p = (const char *)b->p;
    if (memchr(p, 0, n)) fail(b->s, EPROTO, "%s string %s holds a NUL byte", type_name(b->s->type), field);
    b->p += n;
    b->left -= n;
    *len = n;
    return p;
}

static void body_end(struct body *b) {
    if (b->left != 0) fail(b->s, EPROTO, "%s body longer than its fields", type_name(b->s->type));
}

/* Copies a string field to *out as a C string. */
static char *copy_str(char **out, const char *p, uint32_t n) {
    char *d = *out;
    memcpy(d, p, n);
    d[n] = 0;
    *out = d + n + 1;
    return d;
}

/* --- exec ------------------------------------------------------------------------------------ */

static const char *const BASE_ENV[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8",
};
#define BASE_ENVC (sizeof BASE_ENV / sizeof BASE_ENV[0])

static int same_name(const char *a, const char *b) {
    while (*a && *a != '=' && *a == *b) a++, b++;
    return *a == '=' && *b == '=';
}

static void send_output(struct session *s, int *fd, uint16_t type) {
    ssize_t r = read(*fd, s->buf + 8, MAX_BODY);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (r <= 0) {
        close(*fd);
        *fd = -1;
        return;
    }
    send_buf(s, type, (uint32_t)r);
}

static void run_exec(struct session *s) {
    struct body b = body_of(s);
    uint32_t flags = take_u32(&b, "flags");
    if (flags & ~1u) fail(s, EPROTO, "EXEC flags 0x%x: unknown bits", flags);
    uint32_t cwd_len, n;
    const char *cwd_p = take_str(&b, "cwd", &cwd_len);
    uint32_t argc = take_u32(&b, "argc");
    if (argc == 0) fail(s, EPROTO, "EXEC argc is 0");
    if (argc > b.left / 4) fail(s, EPROTO, "EXEC argc %u runs past the body", argc);
    /* Each string takes 4 + n body bytes and n + 1 here, so the body length bounds the copies. */
    char *strings = malloc((size_t)s->len + 2);
    char **argv = malloc(((size_t)argc + 1) * sizeof *argv);
    if (!strings || !argv) fail(s, ENOMEM, "out of memory");
    char *out = strings;
    char *cwd = cwd_len ? copy_str(&out, cwd_p, cwd_len) : "/";
    for (uint32_t i = 0; i < argc; i++) {
        const char *p = take_str(&b, "argv", &n);
        argv[i] = copy_str(&out, p, n);
    }
    argv[argc] = NULL;
    uint32_t envc = take_u32(&b, "envc");
    if (envc > b.left / 4) fail(s, EPROTO, "EXEC envc %u runs past the body", envc);
    char **envp = malloc(((size_t)envc + BASE_ENVC + 1) * sizeof *envp);
    if (!envp) fail(s, ENOMEM, "out of memory");
    size_t nenv = 0;
    for (size_t i = 0; i < BASE_ENVC; i++) envp[nenv++] = (char *)BASE_ENV[i];
    for (uint32_t i = 0; i < envc; i++) {
        const char *p = take_str(&b, "env", &n);
        const char *eq = memchr(p, '=', n);
        if (!eq || eq == p) fail(s, EPROTO, "EXEC env entry %u is not NAME=value", i);
        char *e = copy_str(&out, p, n);
        size_t j = 0;
        while (j < nenv && !same_name(envp[j], e)) j++;
        envp[j] = e;
        if (j == nenv) nenv++;
    }
    envp[nenv] = NULL;
    body_end(&b);

    int in[2] = {-1, -1}, o[2], e[2];
    if (pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0) fail(s, errno, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (flags & 1) {
        if (pipe2(in, O_CLOEXEC) < 0) fail(s, errno, "pipe: %s", strerror(errno));
        fcntl(in[1], F_SETFL, O_NONBLOCK);
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    } else {
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_adddup2(&fa, o[1], 1);
    posix_spawn_file_actions_adddup2(&fa, e[1], 2);
    posix_spawn_file_actions_addchdir_np(&fa, cwd);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    /* posix_spawnp searches the PATH of the calling process: make it the new process's. */
    environ = envp;
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], &fa, &at, argv, envp);
    if (err) fail(s, err, "%s: %s", argv[0], strerror(err));
    s->child = pid;
    close(o[1]);
    close(e[1]);
    if (in[0] >= 0) close(in[0]);
    free(strings);
    free(argv);
    free(envp);
    uint8_t started[4];
    put_u32(started, (uint32_t)pid);
    send_small(s, T_STARTED, started, 4);

    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int out_fd = o[0], err_fd = e[0], in_fd = in[1];
    int stdin_open = (flags & 1) != 0;   /* STDIN frames allowed: no empty STDIN yet */
    const uint8_t *pend = NULL;          /* STDIN bytes not yet taken by the process */
    uint32_t pend_len = 0;
    int status;
    for (;;) {
        struct pollfd p[5];
        int np = 0, isock, iout = -1, ierr = -1, iin = -1, ipid = -1;
        /* While STDIN bytes wait, frames wait too (bounded memory); only a hang-up is watched. */
        isock = np;
        p[np++] = (struct pollfd){s->sock, pend_len ? POLLRDHUP : POLLIN, 0};
        if (out_fd >= 0) iout = np, p[np++] = (struct pollfd){out_fd, POLLIN, 0};
        if (err_fd >= 0) ierr = np, p[np++] = (struct pollfd){err_fd, POLLIN, 0};
        if (pend_len) iin = np, p[np++] = (struct pollfd){in_fd, POLLOUT, 0};
        if (pidfd >= 0) ipid = np, p[np++] = (struct pollfd){pidfd, POLLIN, 0};
        int r = poll(p, (nfds_t)np, pidfd >= 0 ? -1 : 100);
        if (r < 0 && errno != EINTR) fail(s, errno, "poll: %s", strerror(errno));
        if (r > 0 && p[isock].revents) {
            if (pend_len) finish(s);               /* the host hung up */
            if (!read_frame(s)) finish(s);
            if (s->type == T_STDIN) {
                if (!stdin_open) fail(s, EPROTO, (flags & 1) ? "STDIN after its end" : "STDIN without the stdin flag");
                if (s->len == 0) {
                    stdin_open = 0;
                    if (in_fd >= 0) close(in_fd), in_fd = -1;
                } else if (in_fd >= 0) {
                    pend = s->buf + 8;
                    pend_len = s->len;
                    iin = -1;                      /* written below, at once */
                }
            } else if (s->type == T_SIGNAL) {
                struct body sb = body_of(s);
                uint32_t sig = take_u32(&sb, "signo");
                body_end(&sb);
                if (kill(-pid, (int)sig) < 0 && errno != ESRCH) fail(s, errno, "signal %u: %s", sig, strerror(errno));
            } else {
                unexpected(s, "during EXEC");
            }
        }
        if (pend_len && (iin < 0 || p[iin].revents)) {
            ssize_t w = write(in_fd, pend, pend_len);
            if (w > 0) {
                pend += w;
                pend_len -= (uint32_t)w;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                close(in_fd);                      /* the process closed its stdin: drop what it missed */
                in_fd = -1;
                pend_len = 0;
            }
        }
        if (iout >= 0 && p[iout].revents) send_output(s, &out_fd, T_STDOUT);
        if (ierr >= 0 && p[ierr].revents) send_output(s, &err_fd, T_STDERR);
        if (ipid < 0 || (r > 0 && p[ipid].revents)) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) break;
        }
    }
    if (in_fd >= 0) close(in_fd);
    /* What is left of the output: to end of file, or until DRAIN_IDLE_MS pass with no data. */
    while (out_fd >= 0 || err_fd >= 0) {
        struct pollfd p[2];
        int np = 0, iout = -1, ierr = -1;
        if (out_fd >= 0) iout = np, p[np++] = (struct pollfd){out_fd, POLLIN, 0};
        if (err_fd >= 0) ierr = np, p[np++] = (struct pollfd){err_fd, POLLIN, 0};
        int r = poll(p, (nfds_t)np, DRAIN_IDLE_MS);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (iout >= 0 && p[iout].revents) send_output(s, &out_fd, T_STDOUT);
        if (ierr >= 0 && p[ierr].revents) send_output(s, &err_fd, T_STDERR);
    }
    uint8_t ex[8];
    if (WIFSIGNALED(status)) {
        put_u32(ex, 1);
        put_u32(ex + 4, (uint32_t)WTERMSIG(status));
    } else {
        put_u32(ex, 0);
        put_u32(ex + 4, (uint32_t)WEXITSTATUS(status));
    }
    s->child = 0;                              /* exited: what it left running is no longer ours to kill */
    send_small(s, T_EXIT, ex, 8);
}

/* --- files ----------------------------------------------------------------------------------- */

/* Creates the missing parent directories of path (mode 0755, like mkdir -p). */
static void make_parents(char *path) {
    for (char *p = path + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = 0;
        mkdir(path, 0755);
        *p = '/';
    }
}

static void run_put(struct session *s) {
    struct body b = body_of(s);
    uint32_t mode = take_u32(&b, "mode"), n;
    const char *p = take_str(&b, "path", &n);
    body_end(&b);
    if (mode & ~07777u) fail(s, EPROTO, "PUT mode 0%o: not permission bits", mode);
    if (n == 0 || p[0] != '/') fail(s, EINVAL, "PUT path must be absolute");
    if (p[n - 1] == '/') fail(s, EISDIR, "PUT path ends in /");
    char *path = malloc((size_t)n + 1), *tmp = malloc((size_t)n + 32);
    if (!path || !tmp) fail(s, ENOMEM, "out of memory");
    memcpy(path, p, n);
    path[n] = 0;
    char *slash = strrchr(path, '/');
    snprintf(tmp, (size_t)n + 32, "%.*s/.%s.kindling-%d", (int)(slash - path), path, slash + 1, (int)getpid());
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 3; attempt++) {
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) break;
        if (errno == ENOENT && attempt == 0) make_parents(path);
        else if (errno == EEXIST) unlink(tmp);     /* left by a dead session with the same pid */
        else break;
    }
    if (fd < 0) fail(s, errno, "%s: %s", path, strerror(errno));
    s->tmp = tmp;
    for (;;) {
        if (!read_frame(s)) finish(s);
        if (s->type != T_DATA) unexpected(s, "during PUT");
        if (s->len == 0) break;
        if (write_full(fd, s->buf + 8, s->len) < 0) fail(s, errno, "%s: %s", path, strerror(errno));
    }
    if (fchmod(fd, (mode_t)mode) < 0 || close(fd) < 0 || rename(tmp, path) < 0)
        fail(s, errno, "%s: %s", path, strerror(errno));
    s->tmp = NULL;
    send_small(s, T_OK, NULL, 0);
}

static void run_get(struct session *s) {
    struct body b = body_of(s);
    uint32_t n;
    const char *p = take_str(&b, "path", &n);
    body_end(&b);
    if (n == 0 || p[0] != '/') fail(s, EINVAL, "GET path must be absolute");
    char *path = malloc((size_t)n + 1);
    if (!path) fail(s, ENOMEM, "out of memory");
    memcpy(path, p, n);
    path[n] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) fail(s, errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) fail(s, errno, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) fail(s, EISDIR, "%s: %s", path, strerror(EISDIR));
    if (!S_ISREG(st.st_mode)) fail(s, EINVAL, "%s: not a regular file", path);
    uint8_t f[12];
    put_u64(f, (uint64_t)st.st_size);
    put_u32(f + 8, (uint32_t)(st.st_mode & 07777));
    send_small(s, T_FILE, f, 12);
    for (;;) {
        ssize_t r = read(fd, s->buf + 8, MAX_BODY);
        if (r < 0) {
            if (errno == EINTR) continue;
            fail(s, errno, "%s: %s", path, strerror(errno));
        }
        send_buf(s, T_DATA, (uint32_t)r);
        if (r == 0) break;
    }
    close(fd);
}

/* --- session --------------------------------------------------------------------------------- */

static _Noreturn void serve(int sock) {
    struct session s = {.sock = sock};
    s.buf = malloc(8 + (size_t)MAX_BODY);
    if (!s.buf) _exit(1);
    if (!read_frame(&s)) finish(&s);
    if (s.type != T_HELLO) fail(&s, EPROTO, "first frame %s, not HELLO", type_name(s.type));
    struct body b = body_of(&s);
    uint32_t version = take_u32(&b, "version");
    body_end(&b);
    if (version != VERSION) fail(&s, EPROTO, "unsupported version %u", version);
    static const char name[] = "kindling-agent 1";
    uint8_t hello[8 + sizeof name];
    put_u32(hello, VERSION);
    put_u32(hello + 4, sizeof name - 1);
    memcpy(hello + 8, name, sizeof name - 1);
    send_small(&s, T_HELLO, hello, 8 + sizeof name - 1);
    for (;;) {
        if (!read_frame(&s)) finish(&s);
        switch (s.type) {
        case T_PING:
            if (s.len > MAX_PING) fail(&s, EPROTO, "PING body %u bytes, over %u", s.len, MAX_PING);
            send_buf(&s, T_PONG, s.len);
            continue;
        case T_EXEC: run_exec(&s); break;
        case T_PUT: run_put(&s); break;
        case T_GET: run_get(&s); break;
        default: unexpected(&s, "after HELLO");
        }
        finish(&s);
    }
}

/* --- PID 1 and the accept loop --------------------------------------------------------------- */

/* Mounts fs at dir unless something is mounted there already (dir on the same device as /). */
static void mount_missing(const char *dir, const char *fs, unsigned long flags) {
    struct stat root, d;
    if (stat("/", &root) < 0) return;
    if (stat(dir, &d) < 0) {
        if (mkdir(dir, 0755) < 0) return;
    } else if (d.st_dev != root.st_dev) {
        return;
    }
    if (mount(fs, dir, fs, flags, NULL) < 0) fprintf(stderr, "kindling-agent: mount %s: %s\n", dir, strerror(errno));
}

static void say(const char *line) {
    int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) fd = 1;
    write_full(fd, line, strlen(line));
    if (fd != 1) close(fd);
}

static int listen_on(const char *unix_path) {
    int fd;
    if (unix_path) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        if (strlen(unix_path) >= sizeof a.sun_path) {
            errno = ENAMETOOLONG;
            return -1;
        }
        strcpy(a.sun_path, unix_path);
        unlink(unix_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) goto bad;
    } else {
        struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_port = PORT, .svm_cid = VMADDR_CID_ANY};
        fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) goto bad;
    }
    if (listen(fd, 64) < 0) goto bad;
    return fd;
bad:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

int main(int argc, char **argv) {
    const char *unix_path = NULL;
    if (argc == 3 && strcmp(argv[1], "--unix") == 0) {
        unix_path = argv[2];
    } else if (argc != 1) {
        fprintf(stderr, "usage: kindling-agent [--unix PATH]\n");
        return 2;
    }
    int pid1 = getpid() == 1;
    if (pid1) {
        mount_missing("/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
        mount_missing("/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC);
        mount_missing("/dev", "devtmpfs", MS_NOSUID);
    }
    /* Spawned processes get pipes or /dev/null on 0-2; keep those slots taken so no socket lands there. */
    for (int fd = open("/dev/null", O_RDWR); fd >= 0 && fd <= 2; fd = open("/dev/null", O_RDWR)) {}
    umask(022);
    /* The kernel reaps children and orphans; sessions restore SIGCHLD to wait for their own. */
    struct sigaction sa = {.sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT};
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd;
    while ((lfd = listen_on(unix_path)) < 0) {
        fprintf(stderr, "kindling-agent: listen on %s: %s\n", unix_path ? unix_path : "vsock port 52", strerror(errno));
        if (!pid1) return 1;
        sleep(1);                                 /* PID 1 never exits */
    }
    say("KINDLING-AGENT-READY 1\n");
    for (;;) {
        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno != EINTR && errno != ECONNABORTED) {
                struct timespec t = {0, 100 * 1000 * 1000};
                nanosleep(&t, NULL);              /* EMFILE and the like: let sessions end */
            }
            continue;
        }
        pid_t p = fork();
        if (p == 0) {
            close(lfd);
            signal(SIGCHLD, SIG_DFL);
            serve(c);
        }
        close(c);
    }
}
