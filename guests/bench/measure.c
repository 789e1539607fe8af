/*
 * measure: runs one command and reports its wall time and peak resident set, for Kindling's start-up
 * benchmark.
 *
 * Usage: measure <result-file> <limit-seconds> <command> [args...]
 *
 * The command inherits stdin, stdout and stderr. Its wall time runs from just before fork() until
 * wait4() returns; its peak RSS is wait4's ru_maxrss: the largest of the command and every descendant
 * it waited for (so for a launcher script that execs a JVM, the JVM's). A JVM cannot measure this of
 * its own children: at exec, the kernel folds the high-water mark of the memory the child was forked
 * from (or, after vfork and posix_spawn, shares) into the child's ru_maxrss, which would then read at
 * least the JVM's own RSS. This process is small, so its mark is far below anything measured.
 * A command still running after the limit is killed (SIGKILL).
 * The result file gets one "key value" line each:
 *   wall_ns <ns>
 *   maxrss_kib <KiB>
 *   exit <status>      (or: signal <number>)
 * Exit status: 0 when the command ran (whatever its own status), 2 on bad usage, 1 on other failures.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t child;

static void on_alarm(int sig)
{
    (void)sig;
    if (child > 0)
        kill(child, SIGKILL);
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: measure <result-file> <limit-seconds> <command> [args...]\n");
        return 2;
    }
    char *end;
    long limit = strtol(argv[2], &end, 10);
    if (*end || limit < 1) {
        fprintf(stderr, "measure: the limit must be a whole number of seconds, got '%s'\n", argv[2]);
        return 2;
    }
    FILE *result = fopen(argv[1], "w");
    if (!result) {
        fprintf(stderr, "measure: cannot write %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct sigaction sa = { .sa_handler = on_alarm };
    sigaction(SIGALRM, &sa, NULL);

    long long t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "measure: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        execv(argv[3], argv + 3);
        fprintf(stderr, "measure: cannot run %s: %s\n", argv[3], strerror(errno));
        _exit(127);
    }
    child = pid;
    alarm((unsigned)limit);
    int status;
    struct rusage ru;
    pid_t r;
    while ((r = wait4(pid, &status, 0, &ru)) < 0 && errno == EINTR)
        ;
    long long t1 = now_ns();
    alarm(0);
    if (r != pid) {
        fprintf(stderr, "measure: wait4: %s\n", strerror(errno));
        return 1;
    }
    fprintf(result, "wall_ns %lld\nmaxrss_kib %ld\n", t1 - t0, ru.ru_maxrss);
    if (WIFEXITED(status))
        fprintf(result, "exit %d\n", WEXITSTATUS(status));
    else
        fprintf(result, "signal %d\n", WTERMSIG(status));
    return fclose(result) == 0 ? 0 : 1;
}
