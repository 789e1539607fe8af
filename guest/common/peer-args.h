/*
 * Argument parsing shared by the guest test tools (ivshmem-peer, uio-peer).
 * The including file defines die(fmt, arg) first: print and exit 2.
 */
#ifndef KINDLING_PEER_ARGS_H
#define KINDLING_PEER_ARGS_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *fmt, const char *arg);

/* strtoul base 0 (decimal or 0x-hex), the whole string, at most max */
static unsigned long number(const char *s, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno || end == s || *end || strchr(s, '-') || v > max)
        die("bad number: %s", s);
    return v;
}

/* the value of hex digit c, or -1 */
static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

#endif
